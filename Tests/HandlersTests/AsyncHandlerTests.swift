import Testing
@testable import Handlers
@testable import HerdHTTP

/// What a user writes: one `respond`, answering `/health` now and the rest asynchronously.
private struct Lookup: AsyncHandler {
    func respond(to request: HTTPRequest, context: HandlerContext) -> HandlerOutcome {
        if request.path == "/health" { return .response(.text(200, "ok\n")) }
        return .async { .text(200, "found \(request.path)\n") }
    }
}

/// The async handler API: one entry point per request (`respond`), the defaults of an async
/// handler, and the debug handler's /async-sleep.
@Suite struct AsyncHandlerTests {
    @Test func respondGivesTheResponseNowOrTheAsyncWork() async throws {
        let h = Lookup()
        let r = HTTPRequest(method: "GET", target: "/k/1")
        let outcome = h.respond(to: r, context: ctx)
        #expect(outcome.isAsync)
        #expect(bodyString(try await outcome.awaitResponse()) == "found /k/1\n")
        let health = h.respond(to: HTTPRequest(method: "GET", target: "/health"), context: ctx)
        #expect(!health.isAsync)
        guard case .response(let now) = health else { Issue.record("not answered now"); return }
        #expect(bodyString(now) == "ok\n")
        #expect(h.mayBlock == false)
        // The synchronous entry point (for callers that cannot await): the response made now,
        // 500 for a request that needs its async work.
        let sync: any Handler = h
        #expect(sync.handle(r, context: ctx).status == 500)
        #expect(bodyString(sync.handle(HTTPRequest(method: "GET", target: "/health"), context: ctx)) == "ok\n")
        // Registered and built like any handler.
        HandlerRegistry.register("lookup-test") { _ in Lookup() }
        #expect(try HandlerRegistry.make("lookup-test") is any AsyncHandler)
    }

    @Test func debugHandlerServesAsyncSleepAsyncAndTheRestNow() async throws {
        let d = DebugHandler()
        #expect(d.respond(to: HTTPRequest(method: "GET", target: "/async-sleep/5"), context: ctx).isAsync)
        #expect(!d.respond(to: HTTPRequest(method: "GET", target: "/sleep/0"), context: ctx).isAsync)
        #expect(!d.respond(to: HTTPRequest(method: "GET", target: "/"), context: ctx).isAsync)
        #expect(d.mayBlock) // /sleep blocks
        let start = ContinuousClock.now
        let r = try await d.respond(to: HTTPRequest(method: "GET", target: "/async-sleep/30"), context: ctx).awaitResponse()
        #expect(bodyString(r) == "slept 30\n")
        #expect(ContinuousClock.now - start >= .milliseconds(25))
        let bad = d.respond(to: HTTPRequest(method: "GET", target: "/async-sleep/x"), context: ctx)
        #expect(try await bad.awaitResponse().status == 400)
        let unknown = d.respond(to: HTTPRequest(method: "GET", target: "/async-nothing/1"), context: ctx)
        #expect(try await unknown.awaitResponse().status == 400)
        let failing = d.respond(to: HTTPRequest(method: "GET", target: "/async-error"), context: ctx)
        await #expect(throws: DebugHandler.RequestedFailure.self) { try await failing.awaitResponse() }
    }

    /// The debug handler decides per request whether it blocks: `/sleep` and `/work` open the
    /// worker's blocking gate, a quick answer and an async request do not.
    @Test func debugHandlerOpensTheBlockingGateOnlyForBlockingEndpoints() {
        let d = DebugHandler()
        let gate = BlockingGate()
        var context = ctx
        context.blockingGate = gate
        for (target, blocks) in [("/sleep/0", true), ("/work/0", true), ("/health", false), ("/", false),
                                 ("/async-sleep/1", false)] {
            gate.arm(fd: -1)
            _ = d.respond(to: HTTPRequest(method: "GET", target: target), context: context)
            #expect(gate.opened == blocks, "\(target)")
        }
    }

    @Test func aCancelledAsyncSleepEndsAtOnce() async throws {
        let d = DebugHandler()
        // A 60 s sleep that must end within 10 s (a margin for a loaded machine: the tests run
        // in parallel, and a 2 s bound was missed once at a load average of 30).
        let outcome = d.respond(to: HTTPRequest(method: "GET", target: "/async-sleep/60000"), context: ctx)
        let task = Task { try await outcome.awaitResponse() }
        let start = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(ContinuousClock.now - start < .seconds(10))
    }
}
