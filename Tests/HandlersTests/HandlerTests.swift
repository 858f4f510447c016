import Glibc
import Testing
@testable import Handlers
@testable import HerdHTTP

let ctx = HandlerContext(listenerName: "test", workerID: 3, pid: 1234, peer: "127.0.0.1:1")

func bodyString(_ r: HTTPResponse) -> String? {
    if case .bytes(let b) = r.body { return String(decoding: b, as: UTF8.self) }
    return nil
}

/// Reads the whole file body: closes the fd of `.file`, leaves a `.sharedFile`'s to its holder.
func fileContents(_ r: HTTPResponse) -> String? {
    // A small file comes from the open-file cache's memory, a larger one as its shared fd.
    if case .bytes(let b) = r.body { return String(decoding: b, as: UTF8.self) }
    let fd: Int32, offset: Int, count: Int
    switch r.body {
    case .file(let f, let o, let c):
        (fd, offset, count) = (f, o, c)
    case .sharedFile(let holder, let o, let c):
        (fd, offset, count) = (holder.fd, o, c)
    default:
        return nil
    }
    defer { if case .file = r.body { close(fd) } }
    var buf = [UInt8](repeating: 0, count: count)
    let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
    guard n == count else { return nil }
    return String(decoding: buf, as: UTF8.self)
}

/// A temporary directory tree, removed on deinit.
final class TempDir {
    let path: String
    let outside: String

    init() {
        path = TempDir.makeTemp("/tmp/herdd-test-XXXXXX")
        outside = TempDir.makeTemp("/tmp/herdd-outside-XXXXXX")
    }

    static func makeTemp(_ pattern: String) -> String {
        var template = Array(pattern.utf8CString)
        return template.withUnsafeMutableBufferPointer { b -> String in
            guard let base = b.baseAddress, let p = mkdtemp(base) else { fatalError("mkdtemp failed") }
            return String(cString: p)
        }
    }

    func write(_ rel: String, _ content: String, base: String? = nil) {
        let fd = open((base ?? path) + "/" + rel, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        precondition(fd >= 0, "create \(rel)")
        _ = content.utf8CString.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    func mkdir(_ rel: String) { precondition(Glibc.mkdir(path + "/" + rel, 0o755) == 0) }

    func symlink(_ target: String, _ rel: String) { precondition(Glibc.symlink(target, path + "/" + rel) == 0) }

    deinit {
        _ = system("rm -rf '\(path)' '\(outside)'")
    }
}

func get(_ h: any Handler, _ target: String, method: String = "GET", headers: HTTPHeaders = ["Host": "h"]) -> HTTPResponse {
    h.handle(HTTPRequest(method: method, target: target, headers: headers), context: ctx)
}

@Suite struct StaticFiles {
    let dir = TempDir()
    let handler: StaticHandler

    init() {
        dir.write("hello.txt", "hello file\n")
        dir.write("page.HTML", "<p>hi</p>")
        dir.write("blob.bin", "xyz")
        dir.write("app.js", "1")
        dir.mkdir("site")
        dir.write("site/index.html", "<h1>index</h1>")
        dir.mkdir("empty")
        dir.write("secret.txt", "secret", base: dir.outside)
        dir.symlink(dir.outside + "/secret.txt", "link-out")
        dir.symlink(dir.outside, "dirlink-out")
        dir.symlink("hello.txt", "link-in")
        handler = StaticHandler(root: dir.path)
    }

    @Test func servesFile() throws {
        let r = get(handler, "/hello.txt")
        #expect(r.status == 200)
        #expect(r.headers["content-type"] == "text/plain")  // nginx's default: no charset on text/plain
        guard case .bytes(let b) = r.body else { Issue.record("a small file is not served from memory"); return }
        #expect(b.count == 11)
        #expect(r.headers["last-modified"]?.hasSuffix(" GMT") == true)
        #expect(fileContents(r) == "hello file\n")
    }

    @Test func contentTypes() {
        let html = get(handler, "/page.HTML"); defer { html.body.discard() }
        #expect(html.headers["content-type"] == "text/html")
        let bin = get(handler, "/blob.bin"); defer { bin.body.discard() }
        #expect(bin.headers["content-type"] == "application/octet-stream")
        let js = get(handler, "/app.js"); defer { js.body.discard() }
        #expect(js.headers["content-type"] == "text/javascript; charset=utf-8")
        #expect(StaticHandler.contentType(forFileName: "a.png") == "image/png")
        #expect(StaticHandler.contentType(forFileName: "a.woff2") == "font/woff2")
        #expect(StaticHandler.contentType(forFileName: "a.json") == "application/json; charset=utf-8")
        #expect(StaticHandler.contentType(forFileName: ".bashrc") == "application/octet-stream")
        #expect(StaticHandler.contentType(forFileName: "noext") == "application/octet-stream")
    }

    @Test func headAlsoServesFile() {
        let r = get(handler, "/hello.txt", method: "HEAD")
        #expect(r.status == 200)
        #expect(fileContents(r) == "hello file\n")
    }

    @Test func dotSegmentsAndSlashes() {
        let r = get(handler, "//./hello.txt")
        #expect(r.status == 200)
        r.body.discard()
    }

    /// A normal path takes the fast way (no split and join); any other the segment by segment
    /// one. Both give the same answers, types included (the type is cached with the lookup).
    /// The one pass over the request's fields finds what `headers[name]` would: the first
    /// field of each name, whatever its case, and nothing for other names of the same length.
    @Test func askedFieldsAreTheFirstOfEachName() {
        let h: HTTPHeaders = ["Host": "h", "range": "bytes=0-1", "RANGE": "bytes=5-6", "If-Range": "\"x\"",
                              "if-match": "\"m\"", "Accept-Encoding": "gzip", "If-None-Match": "\"n\"",
                              "If-Modified-Since": "a", "IF-UNMODIFIED-SINCE": "b", "X-Not-Asked": "c", "Rangx": "d"]
        let a = StaticHandler.AskedFields(h)
        for (value, name) in [(a.range, "Range"), (a.ifRange, "If-Range"), (a.ifMatch, "If-Match"),
                              (a.acceptEncoding, "Accept-Encoding"), (a.ifNoneMatch, "If-None-Match"),
                              (a.ifModifiedSince, "If-Modified-Since"), (a.ifUnmodifiedSince, "If-Unmodified-Since")] {
            #expect(value == h[name], "\(name)")
            #expect(value != nil, "\(name)")
        }
        #expect(a.range == "bytes=0-1")
        let none = StaticHandler.AskedFields(["Host": "h", "Rangx": "d", "If-Matcx": "e"])
        #expect(none.range == nil && none.ifMatch == nil && none.ifRange == nil && none.acceptEncoding == nil)
    }

    /// The one pass over the path: a NUL anywhere (400), and the plain paths.
    @Test func pathScan() {
        for p in ["/a\0b", "\0", "/x/\0", "//\0", "/./\0"] { #expect(StaticHandler.scanPath(p).hasNUL, "\(p)") }
        #expect(StaticHandler.scanPath("/a/b.css").plainLastSlash == 2)
        #expect(StaticHandler.scanPath("/a/b.css").hasNUL == false)
        #expect(get(handler, "/hello.txt\0").status == 400)
        #expect(get(handler, "/site/").status == 200 && get(handler, "/hello.txt/").status == 404)
    }

    @Test func plainPathsAndTheOthersAgree() {
        #expect(StaticHandler.scanPath("/a/b.css").plainLastSlash == 2)
        #expect(StaticHandler.scanPath("/x").plainLastSlash == 0)
        for other in ["/", "//x", "/a//b", "/./x", "/a/.", "/.env", "/a/..", "/a/", ""] {
            #expect(StaticHandler.scanPath(other).plainLastSlash == nil, "\(other)")
        }
        for (plain, other) in [("/hello.txt", "//./hello.txt"), ("/site/index.html", "/site/./index.html"),
                               ("/page.HTML", "/site/../page.HTML")] {
            let a = get(handler, plain), b = get(handler, other)
            #expect(a.status == 200 && b.status == (other.contains("..") ? 404 : 200), "\(other)")
            if b.status == 200 {
                #expect(a.headers["content-type"] == b.headers["content-type"] && fileContents(a) == fileContents(b))
            }
        }
        // The type cached with the entry is the one of the name asked for, on a hit too.
        for _ in 0..<2 { #expect(get(handler, "/app.js").headers["content-type"] == MIMETypes.contentType(forFileName: "app.js")) }
        #expect(get(handler, "/site").headers["Location"] == "/site/")
        #expect(get(handler, "/site/").headers["content-type"] == "text/html")
    }

    @Test func escapeIs404() {
        #expect(get(handler, "/../etc/passwd").status == 404)
        #expect(get(handler, "/site/../../etc/passwd").status == 404)
        #expect(get(handler, "/%2e%2e/%2e%2e/etc/passwd").status == 404)
        #expect(get(handler, "/site/..").status == 404)
    }

    @Test func symlinksOutside() {
        #expect(get(handler, "/link-out").status == 404)
        #expect(get(handler, "/dirlink-out/secret.txt").status == 404)
        // O_NOFOLLOW: even an inside symlink as the last component is refused.
        #expect(get(handler, "/link-in").status == 404)
    }

    @Test func directories() {
        let r = get(handler, "/site/")
        #expect(r.status == 200)
        #expect(r.headers["content-type"] == "text/html")
        #expect(fileContents(r) == "<h1>index</h1>")
        let r2 = get(handler, "/site")  // nginx's behaviour: 301 to the slash form
        #expect(r2.status == 301 && r2.headers["Location"] == "/site/")
        #expect(get(handler, "/empty/").status == 404)
        #expect(get(handler, "/").status == 404)  // root has no index.html
    }

    @Test func methodNotAllowed() {
        let r = get(handler, "/hello.txt", method: "POST")
        #expect(r.status == 405)
        #expect(r.headers["allow"] == "GET, HEAD")
    }

    @Test func missingAndNul() {
        #expect(get(handler, "/nope.txt").status == 404)
        #expect(get(handler, "/hello.txt/x").status == 404)
        #expect(get(handler, "/hello%00.txt").status == 400)
        #expect(get(handler, "*").status == 404)
    }

    @Test func notModified() {
        let r = get(handler, "/hello.txt")
        r.body.discard()
        let lm = r.headers["last-modified"] ?? ""
        let r2 = get(handler, "/hello.txt", headers: ["Host": "h", "If-Modified-Since": lm])
        #expect(r2.status == 304)
        #expect(r2.headers["last-modified"] == lm)
        let r3 = get(handler, "/hello.txt", headers: ["Host": "h", "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"])
        #expect(r3.status == 200)
        r3.body.discard()
    }

    @Test func fifoIsNotServedAndDoesNotHang() {
        #expect(mkfifo(dir.path + "/fifo", 0o644) == 0)
        #expect(get(handler, "/fifo").status == 404)
    }

    @Test func badRoot() {
        let h = StaticHandler(root: "/nonexistent/herdd/root")
        #expect(get(h, "/x").status == 404)
    }
}

@Suite struct BuiltIns {
    @Test func hello() {
        let r = get(HelloHandler(), "/anything")
        #expect(r.status == 200 && bodyString(r) == "hello\n")
        #expect(r.headers["content-type"]?.hasPrefix("text/plain") == true)
    }

    @Test func health() {
        let r = get(HealthHandler(), "/")
        #expect(r.status == 200 && bodyString(r) == "ok pid=1234 worker=3\n")
        #expect(r.headers["cache-control"] == "no-store")
    }

    @Test func debug() {
        let d = DebugHandler()
        #expect(bodyString(get(d, "/")) == "debug pid=1234\n")
        #expect(bodyString(get(d, "/sleep/20")) == "slept 20\n")
        #expect(get(d, "/sleep/abc").status == 400)
        #expect(get(d, "/exit/999").status == 400)
        let echo = d.handle(HTTPRequest(method: "POST", target: "/echo", body: Array("data!".utf8)), context: ctx)
        #expect(bodyString(echo) == "data!")
        #expect(echo.headers["x-body-length"] == "5")
        #expect(echo.headers["content-type"] == "application/octet-stream")
        guard case .stream(let s) = get(d, "/stream/3").body else { Issue.record("not a stream"); return }
        var pieces: [String] = []
        while let p = s.next() { pieces.append(String(decoding: p, as: UTF8.self)) }
        #expect(pieces == ["chunk 0\n", "chunk 1\n", "chunk 2\n"])
        #expect(s.next() == nil)
    }
}

@Suite struct Registry {
    @Test func builtIns() throws {
        #expect(try HandlerRegistry.make("hello") is HelloHandler)
        #expect(try HandlerRegistry.make("health") is HealthHandler)
        #expect(try HandlerRegistry.make("debug") is DebugHandler)
        #expect(try HandlerRegistry.make("static:/tmp") is StaticHandler)
        #expect(HandlerRegistry.builtInNames == ["hello", "health", "debug", "static"])
    }

    @Test func errors() {
        for spec in ["nope", "metrics", "", "static", "static:", "static:relative/dir",
                     "static:/nonexistent/herdd", "static:/etc/passwd", "hello:arg"] {
            #expect(throws: HandlerSpecError.self, "\(spec)") { try HandlerRegistry.make(spec) }
        }
        do {
            _ = try HandlerRegistry.make("nope")
        } catch let e as HandlerSpecError {
            #expect(e.description.contains("unknown handler 'nope'"))
            #expect(e.description.contains("hello") && e.description.contains("static:/abs/dir"))
        } catch {
            Issue.record("wrong error \(error)")
        }
    }

    struct Custom: Handler {
        var arg: String?
        func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse { .text(200, arg ?? "none") }
    }

    @Test func custom() throws {
        HandlerRegistry.register("custom-test") { Custom(arg: $0) }
        let h = try HandlerRegistry.make("custom-test:x:y")
        #expect(bodyString(get(h, "/")) == "x:y")
        #expect(bodyString(get(try HandlerRegistry.make("custom-test"), "/")) == "none")
        #expect(HandlerRegistry.knownNames.contains("custom-test"))
    }
}
