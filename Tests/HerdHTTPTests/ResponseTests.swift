import Glibc
import Testing
@testable import HerdHTTP

func serialize(_ r: HTTPResponse, head: Bool = false, keepAlive: Bool = true, minor: Int = 1)
    -> (String, BodyFraming) {
    var out: [UInt8] = []
    let f = HTTPResponseHead.serialize(r, requestIsHEAD: head, keepAlive: keepAlive, versionMinor: minor,
                                       date: "Sun, 06 Nov 1994 08:49:37 GMT", into: &out)
    return (String(decoding: out, as: UTF8.self), f)
}

final class ArrayStream: BodyStream, @unchecked Sendable {
    var pieces: [[UInt8]]
    init(_ pieces: [[UInt8]]) { self.pieces = pieces }
    func next() -> [UInt8]? { pieces.isEmpty ? nil : pieces.removeFirst() }
}

@Suite struct Serializer {
    @Test func basicBytes() {
        let (s, f) = serialize(.text(200, "hi\n"))
        #expect(s == "HTTP/1.1 200 OK\r\nServer: herdd\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                + "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\n")
        #expect(f == .contentLength(3))
    }

    @Test func headGetsLengthButNoBody() {
        let (s, f) = serialize(.text(200, "hello"), head: true)
        #expect(s.contains("Content-Length: 5\r\n"))
        #expect(f == .none)
        let (s2, f2) = serialize(HTTPResponse(status: 200, body: .file(fd: -1, offset: 0, count: 1234)), head: true)
        #expect(s2.contains("Content-Length: 1234\r\n"))
        #expect(f2 == .none)
    }

    @Test func fileLength() {
        let (s, f) = serialize(HTTPResponse(status: 200, body: .file(fd: -1, offset: 10, count: 99)))
        #expect(s.contains("Content-Length: 99\r\n"))
        #expect(f == .contentLength(99))
    }

    @Test func noBodyStatuses() {
        for status in [100, 101, 204, 304] {
            let (s, f) = serialize(HTTPResponse(status: status, body: .bytes(bytes("ignored"))))
            #expect(!s.contains("Content-Length"), "\(status)")
            #expect(!s.contains("Transfer-Encoding"), "\(status)")
            #expect(f == .none)
        }
        let (s, _) = serialize(HTTPResponse(status: 204))
        #expect(s.hasPrefix("HTTP/1.1 204 No Content\r\n"))
    }

    @Test func streamFraming() {
        let (s11, f11) = serialize(HTTPResponse(status: 200, body: .stream(ArrayStream([]))))
        #expect(s11.contains("Transfer-Encoding: chunked\r\n"))
        #expect(!s11.contains("Connection:"))
        #expect(f11 == .chunked)
        let (s10, f10) = serialize(HTTPResponse(status: 200, body: .stream(ArrayStream([]))), keepAlive: true, minor: 0)
        #expect(!s10.contains("Transfer-Encoding"))
        #expect(!s10.contains("Content-Length"))
        #expect(s10.contains("Connection: close\r\n"))  // keep-alive forced off
        #expect(!s10.contains("keep-alive"))
        #expect(f10 == .closeDelimited)
        let (_, fh) = serialize(HTTPResponse(status: 200, body: .stream(ArrayStream([]))), head: true)
        #expect(fh == .none)
    }

    @Test func connectionHeaders() {
        #expect(serialize(.text(200, "x"), keepAlive: false).0.contains("Connection: close\r\n"))
        #expect(serialize(.text(200, "x"), keepAlive: true, minor: 0).0.contains("Connection: keep-alive\r\n"))
        #expect(!serialize(.text(200, "x"), keepAlive: true, minor: 1).0.contains("Connection"))
        #expect(serialize(.text(200, "x"), keepAlive: false, minor: 0).0.contains("Connection: close\r\n"))
    }

    @Test func framingHeadersFromHandlerIgnored() {
        var r = HTTPResponse.text(200, "abc")
        r.headers.add("Content-Length", "999")
        r.headers.add("transfer-encoding", "chunked")
        r.headers.add("Connection", "upgrade")
        r.headers.add("X-Ok", "1")
        let (s, _) = serialize(r)
        #expect(s.contains("Content-Length: 3\r\n"))
        #expect(!s.contains("999") && !s.contains("chunked") && !s.contains("upgrade"))
        #expect(s.contains("X-Ok: 1\r\n"))
    }

    @Test func handlerServerAndDateWin() {
        let r = HTTPResponse(status: 200, headers: ["Server": "custom", "Date": "then"])
        let (s, _) = serialize(r)
        #expect(s.contains("Server: custom\r\n") && !s.contains("herdd"))
        #expect(s.contains("Date: then\r\n") && !s.contains("1994"))
    }

    @Test func responseSplittingDropped() {
        let r = HTTPResponse(status: 200, headers: ["X-Evil": "a\r\nSet-Cookie: x", "Bad Name": "v", "Good": "ok"])
        let (s, _) = serialize(r)
        #expect(!s.contains("Set-Cookie") && !s.contains("Bad Name"))
        #expect(s.contains("Good: ok\r\n"))
    }

    @Test func invalidStatusBecomes500() {
        #expect(serialize(HTTPResponse(status: 42)).0.hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
        #expect(serialize(HTTPResponse(status: 1000)).0.hasPrefix("HTTP/1.1 500 "))
        #expect(serialize(HTTPResponse(status: 599)).0.hasPrefix("HTTP/1.1 599 \r\n"))
    }

    @Test func chunks() {
        var out: [UInt8] = []
        HTTPResponseHead.chunk(bytes("hello"), into: &out)
        HTTPResponseHead.chunk([], into: &out)
        HTTPResponseHead.chunk([UInt8](repeating: 97, count: 26), into: &out)
        out += HTTPResponseHead.lastChunk
        #expect(String(decoding: out, as: UTF8.self)
                == "5\r\nhello\r\n1a\r\n" + String(repeating: "a", count: 26) + "\r\n0\r\n\r\n")
        // Our own parser can decode what we produce.
        let req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + String(decoding: out, as: UTF8.self)
        #expect(request(parseOnce(req))?.0.body.count == 31)
    }

    @Test func errorResponses() {
        for status in [400, 408, 413, 414, 431, 501, 505] {
            let r = HTTPResponse.errorResponse(status: status)
            #expect(r.status == status)
            guard case .bytes(let b) = r.body else { Issue.record("not bytes"); continue }
            #expect(String(decoding: b, as: UTF8.self) == "\(status) \(httpReasonPhrase(status))\n")
            #expect(r.headers["content-type"] == "text/plain; charset=utf-8")
        }
    }

    @Test func reasonPhrases() {
        #expect(httpReasonPhrase(200) == "OK")
        #expect(httpReasonPhrase(404) == "Not Found")
        #expect(httpReasonPhrase(413) == "Content Too Large")
        #expect(httpReasonPhrase(431) == "Request Header Fields Too Large")
        #expect(httpReasonPhrase(505) == "HTTP Version Not Supported")
        #expect(httpReasonPhrase(799) == "")
    }
}

@Suite struct Dates {
    @Test func rfcExample() {
        #expect(HTTPDate.format(epochSeconds: 784111777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 1709251199) == "Thu, 29 Feb 2024 23:59:59 GMT")
    }
}

@Suite struct Headers {
    @Test func operations() {
        var h = HTTPHeaders([("A", "1"), ("b", "2"), ("a", "3")])
        #expect(h.count == 3)
        #expect(h["a"] == "1" && h["B"] == "2" && h["c"] == nil)
        #expect(h.values("A") == ["1", "3"])
        h.set("A", "x")
        #expect(h.values("a") == ["x"] && h.count == 2)
        #expect(h.map(\.name) == ["A", "b"])
        h.add("C", "y")
        h.remove("b")
        #expect(h.map(\.value) == ["x", "y"])
        h.set("New", "n")
        #expect(h["new"] == "n" && h.count == 3)
        #expect(!ASCII.caseInsensitiveEquals("Host", "Hos"))
        #expect(ASCII.caseInsensitiveEquals("cOnTeNt-LeNgTh", "Content-Length"))
        let lit: HTTPHeaders = ["X": "1", "Y": "2"]
        #expect(lit.map(\.name) == ["X", "Y"])
        #expect(HTTPHeaders().count == 0)
    }
}

@Suite struct ByteLevelHelpers {
    /// The two tchar masks are hand-computed constants: compare them with RFC 9110's definition.
    @Test func tcharMasksMatchRFC9110() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for c in 0...255 {
            #expect(ASCII.isTchar(UInt8(c)) == tchar.contains(UInt8(c)), "byte \(c)")
        }
    }

    /// Literal status lines spell the same line the general path would build.
    @Test func literalStatusLines() {
        var literal = 0
        for s in 100...599 {
            guard let line = HTTPResponseHead.commonStatusLine(s) else { continue }
            literal += 1
            #expect(line.description == "HTTP/1.1 \(s) \(httpReasonPhrase(s))\r\n")
        }
        #expect(literal >= 10)
    }

    /// Interned field names and methods keep the client's exact spelling; other spellings and
    /// other names are decoded as sent.
    @Test func commonNamesKeepSpelling() throws {
        for name in ["Host", "host", "User-Agent", "Accept-Encoding", "Content-Length", "If-Modified-Since"] {
            let got = Array(name.utf8).withUnsafeBytes { HTTPRequestParser.commonFieldName($0) }
            #expect(got == name)
        }
        for name in ["HOST", "Hosts", "X-Custom", "content-Length", ""] {
            #expect(Array(name.utf8).withUnsafeBytes { HTTPRequestParser.commonFieldName($0) } == nil)
        }
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            #expect(Array(m.utf8).withUnsafeBytes { HTTPRequestParser.commonMethod($0) } == m)
        }
        #expect(Array("get".utf8).withUnsafeBytes { HTTPRequestParser.commonMethod($0) } == nil)
        var p = HTTPRequestParser()
        guard case .request(let r, _) = p.parse(Array("get /a HTTP/1.1\r\nhOsT: x\r\nhost2: y\r\n\r\n".utf8)) else {
            Issue.record("not parsed"); return
        }
        #expect(r.method == "get" && r.headers.map(\.name) == ["hOsT", "host2"])
    }

    @Test func listElementsAndTokens() {
        var seen: [String] = []
        Array(" a ,, b\t,c ,".utf8).withUnsafeBytes { p in
            ASCII.forEachListElement(p) { seen.append(String(decoding: $0, as: UTF8.self)); return true }
        }
        #expect(seen == ["a", "b", "c"])
        var all: [String] = []
        Array(" a ,, b\t,c ,".utf8).withUnsafeBytes { p in
            ASCII.forEachListElement(p, keepingEmpty: true) { all.append(String(decoding: $0, as: UTF8.self)); return true }
        }
        #expect(all == ["a", "", "b", "c", ""])
        let h: HTTPHeaders = ["Connection": "Upgrade, KEEP-ALIVE", "X": "close"]
        #expect(h.containsToken("keep-alive", in: "connection"))
        #expect(!h.containsToken("close", in: "Connection"))
        #expect(!h.containsToken("keep", in: "Connection"))
    }

    /// advance + takeRequest (the worker's path) gives the same requests as parse, once each.
    @Test func advanceThenTake() {
        let bytes = Array("POST /a?b=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nHost: h\r\n\r\n".utf8)
        var p = HTTPRequestParser()
        var offset = 0
        var got: [(String, String, String?, [UInt8])] = []
        while offset < bytes.count {
            let progress = bytes.withUnsafeBytes { p.advance(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            guard case .request(let consumed) = progress, let r = p.takeRequest() else {
                Issue.record("unexpected \(progress)"); return
            }
            #expect(p.takeRequest() == nil)
            got.append((r.method, r.path, r.query, r.body))
            offset += consumed
        }
        #expect(got.count == 2)
        #expect(got.first.map { $0.0 == "POST" && $0.1 == "/a" && $0.2 == "b=1" && $0.3 == Array("xyz".utf8) } == true)
        #expect(got.last.map { $0.0 == "GET" && $0.1 == "/c" && $0.2 == nil && $0.3.isEmpty } == true)
    }
}

@Suite struct ConnectionOptions {
    /// keepAlive from what the parser noted equals keepAlive computed from the fields, and a
    /// change to the fields is seen.
    @Test func parsedOptionsMatchFields() throws {
        let cases: [(String, Bool)] = [
            ("GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: x\r\nconnection: keep-alive\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", false),
        ]
        for (text, expected) in cases {
            var p = HTTPRequestParser()
            guard case .request(var r, _) = p.parse(Array(text.utf8)) else { Issue.record("not parsed: \(text)"); continue }
            #expect(r.keepAlive == expected, "\(text)")
            let fromFields = HTTPRequest(method: r.method, target: r.target, path: r.path, query: r.query,
                                         versionMinor: r.versionMinor, headers: r.headers, body: [])
            #expect(fromFields.keepAlive == expected, "\(text)")
            r.headers.set("Connection", expected ? "close" : "keep-alive")
            #expect(r.keepAlive == !expected, "after set: \(text)")
        }
    }
}

/// HTTPDate formats in pure arithmetic (HerdHTTP imports no libc time function): it must say
/// what gmtime_r says, for every kind of day (leap years, centuries, before 1970).
@Suite struct DatesAgainstGmtime {
    @Test func sameAsGmtime() {
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func pad(_ v: Int32, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        var rng = SystemRandomNumberGenerator()
        var samples: [Int] = [0, -1, 86_399, 86_400, 951_782_400, 951_868_799, 4_107_542_400, 253_402_300_799, -2_208_988_800]
        for _ in 0..<20_000 { samples.append(Int.random(in: -5_000_000_000...253_402_300_799, using: &rng)) }
        for t in samples {
            var tt = time_t(t)
            var tm = Glibc.tm()
            guard gmtime_r(&tt, &tm) != nil else { Issue.record("gmtime_r \(t)"); continue }
            let want = "\(days[Int(tm.tm_wday)]), \(pad(tm.tm_mday, 2)) \(months[Int(tm.tm_mon)]) \(pad(tm.tm_year + 1900, 4)) "
                + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)) GMT"
            #expect(HTTPDate.format(epochSeconds: t) == want, "\(t)")
            if HTTPDate.format(epochSeconds: t) != want { break }
        }
    }
}

/// `HTTPHeaders.prepareForResponses()`: a prepared block must serialize exactly as the fields
/// do one by one, and any change to the fields must drop it.
@Suite struct PreparedResponseFields {
    /// Fields with every case the serializer treats apart: framing fields it owns, a name that
    /// is not a token, a value that would split the head, Server and Date set by the handler.
    static let samples: [HTTPHeaders] = [
        ["Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT", "ETag": "\"a-b-c\"", "Content-Type": "text/css",
         "Accept-Ranges": "bytes"],
        ["Content-Length": "7", "Connection": "close", "Transfer-Encoding": "chunked", "X-Kept": "yes"],
        ["Bad Name": "x", "X-Split": "a\r\nInjected: 1", "X-Fine": "ok"],
        ["Server": "mine", "DATE": "Mon, 07 Nov 1994 08:49:37 GMT", "X-A": "1"],
        [:],
    ]

    @Test func aPreparedBlockSerializesAsTheFieldsDo() {
        for fields in Self.samples {
            for body in [ResponseBody.bytes(bytes("hi")), .file(fd: -1, offset: 0, count: 5)] {
                var prepared = fields
                prepared.prepareForResponses()
                #expect(prepared.prepared != nil)
                for (head, keepAlive, minor) in [(false, true, 1), (true, false, 0), (false, false, 1)] {
                    let plain = serialize(HTTPResponse(status: 200, headers: fields, body: body), head: head, keepAlive: keepAlive, minor: minor)
                    let fast = serialize(HTTPResponse(status: 200, headers: prepared, body: body), head: head, keepAlive: keepAlive, minor: minor)
                    #expect(fast.0 == plain.0, "\(fields)")
                    #expect(fast.1 == plain.1)
                }
            }
        }
    }

    @Test func anyChangeDropsThePreparedBlock() {
        var h: HTTPHeaders = ["ETag": "\"1\"", "Content-Type": "text/plain"]
        h.prepareForResponses()
        var added = h
        added.add("Content-Range", "bytes 0-1/2")
        #expect(added.prepared == nil)
        #expect(serialize(HTTPResponse(status: 206, headers: added)).0.contains("Content-Range: bytes 0-1/2\r\n"))
        var replaced = h
        replaced.set("ETag", "\"2\"")
        #expect(replaced.prepared == nil)
        #expect(serialize(HTTPResponse(status: 200, headers: replaced)).0.contains("ETag: \"2\"\r\n"))
        var removed = h
        removed.remove("Content-Type")
        #expect(removed.prepared == nil)
        #expect(!serialize(HTTPResponse(status: 200, headers: removed)).0.contains("Content-Type"))
        // The copy that was not changed keeps it.
        #expect(h.prepared != nil)
    }
}
