import Glibc
import Testing
@testable import Handlers
@testable import HerdHTTP

// Tests written to kill specific mutants (Tests/mutants/run.sh): each pins a rule that another
// layer would otherwise hide, or a limit to the exact byte.

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
