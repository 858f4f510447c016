import Testing
@testable import HerdHTTP

// Written to kill specific mutants (Tests/mutants/run.sh: head-limit-one-byte-more,
// partial-head-limit-one-byte-more): the head-size limit to the exact byte.

@Suite struct HeadSizeLimitBoundary {
    /// A complete head of exactly maxHeaderBytes (request line through the blank line) parses;
    /// one byte less of room is 431. Catches the limit moved by one byte either way.
    @Test func completeHeadAtTheLimit() {
        let head = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: abcdefgh\r\n\r\n"
        let size = head.utf8.count
        #expect(request(parseOnce(head, limits: HTTPLimits(maxHeaderBytes: size))) != nil)
        #expect(errorStatus(parseOnce(head, limits: HTTPLimits(maxHeaderBytes: size - 1))) == 431)
    }

    /// The same limit while the head is still incomplete (no LF yet at the end of the buffer).
    @Test func incompleteHeadAtTheLimit() {
        let partial = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: abcdefgh"
        let size = partial.utf8.count
        #expect(isNeedMore(parseOnce(partial, limits: HTTPLimits(maxHeaderBytes: size))))
        #expect(errorStatus(parseOnce(partial, limits: HTTPLimits(maxHeaderBytes: size - 1))) == 431)
    }
}
