import Glibc
import Testing
@testable import Handlers
@testable import HerdHTTP

/// The pure parts of static file serving: ranges, entity tags, dates, Accept-Encoding, MIME table.
@Suite struct StaticConditionsTests {
    typealias C = StaticConditions

    @Test func ranges() {
        #expect(C.parseRange("bytes=0-99", length: 1000) == .range(first: 0, last: 99))
        #expect(C.parseRange("bytes=990-", length: 1000) == .range(first: 990, last: 999))
        #expect(C.parseRange("bytes=-10", length: 1000) == .range(first: 990, last: 999))
        #expect(C.parseRange("bytes=-5000", length: 1000) == .range(first: 0, last: 999))
        #expect(C.parseRange("bytes=900-5000", length: 1000) == .range(first: 900, last: 999))
        #expect(C.parseRange("BYTES= 1 - 2 ", length: 1000) == .range(first: 1, last: 2))
        #expect(C.parseRange("bytes=1000-", length: 1000) == .unsatisfiable)
        #expect(C.parseRange("bytes=-0", length: 1000) == .unsatisfiable)
        #expect(C.parseRange("bytes=0-", length: 0) == .unsatisfiable)
        #expect(C.parseRange("bytes=-1", length: 0) == .unsatisfiable)
        for ignored in ["bytes=0-1,3-4", "bytes=5-1", "bytes=a-b", "bytes=", "bytes=-", "items=0-1", "0-1",
                        "bytes=+1-2", "bytes=99999999999999999999-"] {
            #expect(C.parseRange(ignored, length: 1000) == .full, "\(ignored)")
        }
    }

    @Test func entityTags() {
        #expect(C.etag(size: 0x22bd, mtime: 0x6b0798d0, inode: 0xf78b28) == "\"6b0798d0-22bd-f78b28\"")
        #expect(C.parseTagList("*") == [.any])
        #expect(C.parseTagList(" \"a\" , W/\"b\",\"c,d\"") == [
            .tag(opaque: "\"a\"", weak: false), .tag(opaque: "\"b\"", weak: true), .tag(opaque: "\"c,d\"", weak: false),
        ])
        for bad in ["", "a", "\"a", "\"a\"x", "*, \"a\"", "W/a"] {
            #expect(C.parseTagList(bad) == nil, "\(bad)")
        }
        let list = C.parseTagList("W/\"x\", \"y\"")!
        #expect(C.noneMatchHits(list, etag: "\"x\""))  // weak comparison
        #expect(!C.strongMatch(list, etag: "\"x\""))   // strong comparison
        #expect(C.strongMatch(list, etag: "\"y\""))
        #expect(!C.noneMatchHits(list, etag: "\"z\""))
    }

    @Test func httpDates() {
        // The three forms of RFC 9110 5.6.7 for the same instant.
        #expect(C.parseHTTPDate("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777)
        #expect(C.parseHTTPDate("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777)
        #expect(C.parseHTTPDate("Sun Nov  6 08:49:37 1994") == 784111777)
        #expect(C.parseHTTPDate(HTTPDate.format(epochSeconds: 1_700_000_000)) == 1_700_000_000)
        for bad in ["", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT",
                    "Sun, 06 Nov 1994 8:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"] {
            #expect(C.parseHTTPDate(bad) == nil, "\(bad)")
        }
    }

    @Test func acceptEncoding() {
        #expect(C.accepts("gzip, deflate, br", "br"))
        #expect(C.accepts("gzip;q=0.5", "gzip"))
        #expect(!C.accepts("gzip;q=0", "gzip"))
        #expect(!C.accepts("gzip; q=0.000", "gzip"))
        #expect(C.accepts("x-gzip", "gzip"))
        #expect(C.accepts("*", "br"))
        #expect(!C.accepts("*, br;q=0", "br"))
        #expect(!C.accepts("identity", "gzip"))
        #expect(!C.accepts("", "gzip"))
    }

    @Test func mimeTypesFileAndFallback() throws {
        let table = MIMETypes.parse("""
            # comment
            text/x-first\tfoo
            text/x-second\tfoo bar   # the first type listed for an extension wins
            application/x-Upper  UP
            notatype   baz
            """)
        #expect(table == ["foo": "text/x-first", "bar": "text/x-second", "up": "application/x-upper"])
        #expect(MIMETypes.load(path: "/nonexistent/mime.types") == nil)
        // Built-in fallback for what a system table may lack.
        #expect(MIMETypes.builtIn["webmanifest"] == "application/manifest+json")
        #expect(MIMETypes.contentType(forFileName: "a.WEBMANIFEST") == "application/manifest+json; charset=utf-8")
        #expect(MIMETypes.contentType(forFileName: "a.css") == "text/css")
        #expect(MIMETypes.contentType(forFileName: "a.svg") == "image/svg+xml; charset=utf-8")
        #expect(MIMETypes.contentType(forFileName: "a.json") == "application/json; charset=utf-8")
        // A configured charset (nginx's `charset`) goes on every text type, not on binaries.
        #expect(MIMETypes.contentType(forFileName: "a.css", charset: "utf-8") == "text/css; charset=utf-8")
        #expect(MIMETypes.contentType(forFileName: "a.txt", charset: "iso-8859-1") == "text/plain; charset=iso-8859-1")
        #expect(MIMETypes.contentType(forFileName: "a.png", charset: "utf-8") == "image/png")
        #expect(MIMETypes.contentType(forFileName: "x.") == "application/octet-stream")
        // When /etc/mime.types exists (Debian: media-types), it is the source.
        if let system = MIMETypes.load(path: "/etc/mime.types") {
            #expect(system == MIMETypes.system)
            #expect(MIMETypes.type(forExtension: "odt") == system["odt"])
        } else {
            #expect(MIMETypes.system.isEmpty)
        }
    }
}

/// The handler on a real directory tree.
@Suite struct StaticHandlerFeatures {
    let dir = TempDir()
    let handler: StaticHandler

    init() {
        dir.write("data.txt", "0123456789abcdefghij")
        dir.write("data.txt.gz", "GZ")
        dir.mkdir("sub")
        dir.write("sub/index.html", "<p>")
        handler = StaticHandler(root: dir.path)
    }

    func etag(_ r: HTTPResponse) -> String { r.headers["ETag"] ?? "" }

    @Test func rangeAndValidators() throws {
        let full = get(handler, "/data.txt")
        #expect(full.status == 200 && full.headers["Accept-Ranges"] == "bytes")
        #expect(fileContents(full) == "0123456789abcdefghij")
        var st = stat()
        #expect(stat(dir.path + "/data.txt", &st) == 0)
        #expect(etag(full) == StaticConditions.etag(size: 20, mtime: Int(st.st_mtim.tv_sec), inode: UInt64(st.st_ino)))

        let part = get(handler, "/data.txt", headers: ["Range": "bytes=5-9"])
        #expect(part.status == 206 && part.headers["Content-Range"] == "bytes 5-9/20")
        #expect(fileContents(part) == "56789")
        let bad = get(handler, "/data.txt", headers: ["Range": "bytes=20-"])
        #expect(bad.status == 416 && bad.headers["Content-Range"] == "bytes */20")
        let head = get(handler, "/data.txt", method: "HEAD", headers: ["Range": "bytes=5-9"])
        #expect(head.status == 200)
        head.body.discard()

        let inm = get(handler, "/data.txt", headers: ["If-None-Match": etag(full), "If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"])
        #expect(inm.status == 304 && inm.headers["ETag"] == etag(full))
        let stale = get(handler, "/data.txt", headers: ["If-None-Match": "\"x\"", "If-Modified-Since": full.headers["Last-Modified"]!])
        #expect(stale.status == 200)
        stale.body.discard()
        let stale412 = get(handler, "/data.txt", headers: ["If-Match": "\"x\""])
        #expect(stale412.status == 412)
        // RFC 9110 13.2.2 (issue 24 part 5): with If-Match present and matching, an
        // If-Unmodified-Since that would fail (a date long before the file's) is ignored.
        let old = "Mon, 01 Jan 2001 00:00:00 GMT"
        #expect(get(handler, "/data.txt", headers: ["If-Unmodified-Since": old]).status == 412)
        let matched = get(handler, "/data.txt", headers: ["If-Match": etag(full), "If-Unmodified-Since": old])
        #expect(matched.status == 200)
        matched.body.discard()
    }

    @Test func directoriesAndSiblings() {
        let r = get(handler, "/sub?q=1")
        #expect(r.status == 301 && r.headers["Location"] == "/sub/?q=1")
        #expect(get(handler, "/data.txt/").status == 404)
        let index = get(handler, "/sub/")
        #expect(fileContents(index) == "<p>")
        let gz = get(handler, "/data.txt", headers: ["Accept-Encoding": "gzip"])
        #expect(gz.headers["Content-Encoding"] == "gzip" && gz.headers["Vary"] == "Accept-Encoding")
        #expect(gz.headers["Content-Type"] == "text/plain")
        #expect(fileContents(gz) == "GZ")
        let plain = get(handler, "/data.txt", headers: ["Accept-Encoding": "br"])
        #expect(plain.headers["Content-Encoding"] == nil && plain.headers["Vary"] == "Accept-Encoding")
        #expect(fileContents(plain) == "0123456789abcdefghij")
        #expect(StaticHandler.percentEncodePath("/a b/ü%/") == "/a%20b/%C3%BC%25/")
    }
}

/// Static options (issue 25): dotfile refusal and the charset setting.
@Suite struct StaticOptionsTests {
    @Test func parsesOptions() throws {
        let (root, o) = try StaticOptions.parse("/srv/www;dotfiles=deny;charset=utf-8")
        #expect(root == "/srv/www" && o.denyDotfiles && o.charset == "utf-8")
        let (plain, d) = try StaticOptions.parse("/srv/www")
        #expect(plain == "/srv/www" && d == StaticOptions() && d.openFileCache)
        #expect(try !StaticOptions.parse("/srv/www;cache=off").options.openFileCache)
        #expect(try StaticOptions.parse("/srv/www;cache=on").options.openFileCache)
        for bad in ["/a;dotfiles=maybe", "/a;colour=red", "/a;charset=", "/a;charset=a b", "/a;dotfiles", "/a;cache=maybe"] {
            #expect(throws: StaticOptionError.self, "\(bad)") { _ = try StaticOptions.parse(bad) }
        }
        #expect(throws: HandlerSpecError.self) { _ = try HandlerRegistry.make("static:/tmp;nope=1") }
    }

    @Test func dotfilesDeniedOnlyWhenAsked() throws {
        let dir = TempDir()
        dir.write(".env", "SECRET=1")
        dir.mkdir(".git")
        dir.write(".git/config", "[core]")
        dir.write("ok.txt", "ok")
        let deny = try HandlerRegistry.make("static:\(dir.path);dotfiles=deny")
        for path in ["/.env", "/.git/config", "/.git/", "/a/../.env", "/./.env"] {
            let r = get(deny, path)
            #expect(r.status == 404, "\(path)")
            r.body.discard()
        }
        let ok = get(deny, "/ok.txt")
        #expect(ok.status == 200)
        ok.body.discard()
        let allow = get(StaticHandler(root: dir.path), "/.env")
        #expect(allow.status == 200)  // nginx's default: served
        allow.body.discard()
    }

    @Test func rootSymlinkFlipIsFollowedWithinTheValidity() throws {
        let dir = TempDir()
        dir.mkdir("r1"); dir.mkdir("r2")
        dir.write("r1/v.txt", "one"); dir.write("r2/v.txt", "two")
        dir.symlink("r1", "current")
        let h = StaticHandler(root: dir.path + "/current")
        #expect(fileContents(get(h, "/v.txt")) == "one")
        // The atomic deploy: a new link renamed over the old one.
        dir.symlink("r2", "current.tmp")
        #expect(rename(dir.path + "/current.tmp", dir.path + "/current") == 0)
        let deadline = monotonicNanosForTest() + 3 * StaticRoot.validityNanos
        var seen = ""
        while monotonicNanosForTest() < deadline {
            let r = get(h, "/v.txt")
            #expect(r.status == 200)
            seen = fileContents(r) ?? ""
            if seen == "two" { break }
            usleep(20_000)
        }
        #expect(seen == "two")
    }
}

private func monotonicNanosForTest() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Range sets and multipart/byteranges (issue 25).
@Suite struct StaticRangeSetTests {
    typealias R = StaticRanges

    @Test func rangeSets() {
        #expect(R.parse("bytes=0-1,5-6", length: 100) == .ranges([0...1, 5...6]))
        #expect(R.parse("bytes=50-59, -10", length: 100) == .ranges([50...59, 90...99]))  // client's order kept
        #expect(R.parse("bytes=0-9", length: 100) == .ranges([0...9]))
        #expect(R.parse("bytes=,0-1,,5-6,", length: 100) == .ranges([0...1, 5...6]))    // empty elements skipped
        #expect(R.parse("bytes=0-1,200-300", length: 100) == .ranges([0...1]))           // unsatisfiable one dropped
        #expect(R.parse("bytes=200-,300-", length: 100) == .unsatisfiable)
        #expect(R.parse("bytes=0-1,x-2", length: 100) == .full)                          // one malformed: ignored
        #expect(R.parse("bytes=,", length: 100) == .full)
        #expect(R.parse("items=0-1,2-3", length: 100) == .full)
    }

    @Test func abusiveRangeSetsGetTheWholeFile() {
        // CVE-2011-3192: overlapping, too many, or more bytes than the file.
        #expect(R.parse("bytes=0-10,5-20", length: 100) == .full)
        #expect(R.parse("bytes=0-,0-", length: 100) == .full)
        #expect(R.parse("bytes=10-20,0-10", length: 100) == .full)                      // overlap out of order
        #expect(R.parse("bytes=10-20,0-9", length: 100) == .ranges([10...20, 0...9]))   // adjacent is fine
        let many = (0..<R.maxRanges).map { "\($0 * 2)-\($0 * 2)" }.joined(separator: ",")
        #expect(R.parse("bytes=" + many, length: 100) != .full)
        #expect(R.parse("bytes=" + many + ",90-91", length: 100) == .full)
        let big = 4 * R.maxMultipartBytes
        #expect(R.parse("bytes=0-\(R.maxMultipartBytes),\(2 * R.maxMultipartBytes)-", length: big) == .full)
    }

    @Test func multipartBody() throws {
        let dir = TempDir()
        dir.write("d.txt", "0123456789abcdefghij")
        let fd = open(dir.path + "/d.txt", O_RDONLY)
        defer { close(fd) }
        let body = R.multipartBody(fd: fd, ranges: [0...1, 15...19], length: 20, contentType: "text/plain", boundary: "B")
        #expect(body.map { String(decoding: $0, as: UTF8.self) } ==
            "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/20\r\n\r\n01"
            + "\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 15-19/20\r\n\r\nfghij\r\n--B--\r\n")
        #expect(R.multipartBody(fd: fd, ranges: [0...1, 30...31], length: 40, contentType: "x/y", boundary: "B") == nil)
        #expect(R.makeBoundary().count == 16 && R.makeBoundary() != R.makeBoundary())
    }
}
