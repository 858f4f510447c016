import Testing
@testable import HerdHTTP

/// The parser's streamed bodies (HTTPRequestParser+Streaming.swift): the pause after a head with
/// a body, the two decisions, the pieces of a Content-Length and a chunked body as they arrive,
/// and the limit.
@Suite struct ParserStreamingTests {
    /// Drives a parser as herdd's connection does: bytes arrive in `parts`; decoded input is
    /// released; the body's pieces are taken after every step. Returns the pieces, the final
    /// progress, and the request.
    private func run(_ parts: [String], stream: Bool, limits: HTTPLimits = HTTPLimits())
        -> (pieces: [String], last: HTTPRequestParser.Progress, request: HTTPRequest?) {
        var p = HTTPRequestParser(limits: limits)
        p.pauseAfterHead = true
        var buf: [UInt8] = []
        var pieces: [String] = []
        var last = HTTPRequestParser.Progress.needMore
        for part in parts {
            buf += Array(part.utf8)
            while true {
                last = buf.withUnsafeBytes { p.advance($0) }
                guard last == .needMore else { break }
                buf.removeFirst(p.releaseDecodedInput())
                if p.bodyUndecided {
                    #expect(p.pendingHead != nil)
                    if stream { p.streamBody() } else { p.collectBody() }
                    continue
                }
                let piece = p.takeBodyPiece()
                if !piece.isEmpty { pieces.append(String(decoding: piece, as: UTF8.self)) }
                break
            }
            if last != .needMore { break }
        }
        let request = p.takeRequest()
        if let r = request, stream, !r.body.isEmpty { pieces.append(String(decoding: r.body, as: UTF8.self)) }
        return (pieces, last, request)
    }

    @Test func aLengthBodyComesOutAsItArrives() {
        let r = run(["POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", "defg", "hij"], stream: true)
        #expect(r.pieces == ["abc", "defg", "hij"])
        if case .request = r.last {} else { Issue.record("not complete: \(r.last)") }
        #expect(r.request?.path == "/u")
    }

    @Test func aChunkedBodyComesOutAsItArrives() {
        let r = run(["POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "4\r\nde", "fg\r\n0\r\n\r\n"], stream: true)
        #expect(r.pieces == ["abc", "de", "fg"])
        if case .request = r.last {} else { Issue.record("not complete: \(r.last)") }
    }

    @Test func collectingAfterThePauseGathersTheBodyAsBefore() {
        let r = run(["POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc", "def"], stream: false)
        #expect(r.pieces.isEmpty)
        #expect(r.request.map { String(decoding: $0.body, as: UTF8.self) } == "abcdef")
        let c = run(["POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "0\r\n\r\n"], stream: false)
        #expect(c.request.map { String(decoding: $0.body, as: UTF8.self) } == "abc")
    }

    @Test func aRequestWithoutBodyDoesNotPause() {
        var p = HTTPRequestParser()
        p.pauseAfterHead = true
        let progress = Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8).withUnsafeBytes { p.advance($0) }
        #expect(progress == .request(consumed: 27))
    }

    @Test func theLimitHoldsForAStreamedChunkedBody() {
        let limits = HTTPLimits(maxBodyBytes: 5)
        let r = run(["POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "3\r\ndef\r\n0\r\n\r\n"], stream: true, limits: limits)
        #expect(r.pieces == ["abc"])
        #expect(r.last == .error(status: 413, reason: "body too large"))
    }
}
