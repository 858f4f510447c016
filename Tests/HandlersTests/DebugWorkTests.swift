import Glibc
import Testing
@testable import Handlers
@testable import HerdHTTP

/// Issue 12: /work/<us> burns CPU time (benchmarks' CPU-bound handler).
@Suite struct DebugWorkTests {
    @Test func burnsAtLeastTheRequestedCPUTime() {
        let before = DebugHandler.cpuNanos()
        let r = get(DebugHandler(), "/work/20000")
        let spent = DebugHandler.cpuNanos() - before
        #expect(bodyString(r) == "worked 20000\n")
        #expect(spent >= 20_000_000)
    }

    @Test func badArguments() {
        #expect(get(DebugHandler(), "/work/x").status == 400)
        #expect(get(DebugHandler(), "/work/-1").status == 400)
        #expect(bodyString(get(DebugHandler(), "/work/0")) == "worked 0\n")
    }
}
