import Glibc
import Testing
@testable import Handlers
@testable import HerdHTTP

// Tests written to kill specific mutants (Tests/mutants/run.sh): each pins a rule that another
// layer would otherwise hide, or a limit to the exact byte.

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

@Suite struct StaticDotDotRule {
    let dir = TempDir()
    let handler: StaticHandler

    init() {
        dir.write("hello.txt", "hello file\n")
        dir.mkdir("sub")
        dir.write("sub/inner.txt", "inner\n")
        handler = StaticHandler(root: dir.path)
    }

    /// ".." is refused even where it would resolve to a file inside the root, so the rule is
    /// tested by itself: the realpath check (which only catches escapes) cannot stand in for it.
    @Test func dotDotInsideTheRootIs404() {
        #expect(get(handler, "/sub/../hello.txt").status == 404)
        let rootName = String(dir.path.split(separator: "/").last ?? "")
        #expect(get(handler, "/../\(rootName)/hello.txt").status == 404)
        // The same files without "..": served.
        let ok = get(handler, "/hello.txt")
        #expect(ok.status == 200)
        ok.body.discard()
        let inner = get(handler, "/sub/./inner.txt")
        #expect(inner.status == 200)
        inner.body.discard()
    }
}
