import Testing
@testable import Handlers
@testable import HerdHTTP

/// An async-only handler: what a user writes (one async `handle`).
private struct Lookup: AsyncHandler {
    func handle(_ request: HTTPRequest, context: HandlerContext) async throws -> HTTPResponse {
        .text(200, "found \(request.path)\n")
    }
}

/// The async handler API: which requests are async, the defaults of an async-only handler, and
/// the debug handler's /async-sleep.
@Suite struct AsyncHandlerTests {
    @Test func anAsyncOnlyHandlerServesEveryRequestAsyncAndNeverBlocks() async throws {
        let h = Lookup()
        let r = HTTPRequest(method: "GET", target: "/k/1")
        #expect(h.servesAsync(r))
        #expect(h.mayBlock == false)
        // In an async context `handle` is the async one; the sync entry point answers 500.
        #expect(bodyString(try await h.handle(r, context: ctx)) == "found /k/1\n")
        let sync: any Handler = h
        #expect(sync.handle(r, context: ctx).status == 500)
        // Registered and built like any handler.
        HandlerRegistry.register("lookup-test") { _ in Lookup() }
        #expect(try HandlerRegistry.make("lookup-test") is any AsyncHandler)
    }

    @Test func debugHandlerServesAsyncSleepAsyncAndTheRestSync() async throws {
        let d = DebugHandler()
        #expect(d.servesAsync(HTTPRequest(method: "GET", target: "/async-sleep/5")))
        #expect(!d.servesAsync(HTTPRequest(method: "GET", target: "/sleep/5")))
        #expect(!d.servesAsync(HTTPRequest(method: "GET", target: "/")))
        #expect(d.mayBlock) // /sleep blocks
        let start = ContinuousClock.now
        let r = try await d.handle(HTTPRequest(method: "GET", target: "/async-sleep/30"), context: ctx)
        #expect(bodyString(r) == "slept 30\n")
        #expect(ContinuousClock.now - start >= .milliseconds(25))
        #expect(try await d.handle(HTTPRequest(method: "GET", target: "/async-sleep/x"), context: ctx).status == 400)
        #expect(try await d.handle(HTTPRequest(method: "GET", target: "/async-nothing/1"), context: ctx).status == 400)
        await #expect(throws: DebugHandler.RequestedFailure.self) {
            try await d.handle(HTTPRequest(method: "GET", target: "/async-error"), context: ctx)
        }
    }

    @Test func aCancelledAsyncSleepEndsAtOnce() async throws {
        let d = DebugHandler()
        let task = Task { try await d.handle(HTTPRequest(method: "GET", target: "/async-sleep/10000"), context: ctx) }
        let start = ContinuousClock.now
        task.cancel()
        await #expect(throws: CancellationError.self) { try await task.value }
        // Far below the 10 s it would sleep; loose because a loaded machine (load 30 while
        // other builds run) delayed the cancelled task's resumption by 3.8 s once.
        #expect(ContinuousClock.now - start < .seconds(6))
    }
}
