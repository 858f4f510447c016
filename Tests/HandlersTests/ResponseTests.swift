import Testing
@testable import Handlers

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
        #expect(HTTPDate.now().hasSuffix(" GMT") && HTTPDate.now().utf8.count == 29)
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
