/// A handler whose requests are answered by an `async` function: it may await (a database
/// driver, an HTTP client, `Task.sleep`) without holding its worker. See docs/async.md.
///
/// Each request served this way runs as a Swift task on its worker's event loop: the loop is
/// the task's executor (no thread hop, no lock on the hot path), so one worker keeps many
/// requests in flight (up to `--worker-concurrency`) while it goes on serving its other
/// connections. The connection waits for the response without blocking the loop; the
/// response is queued as soon as `handle` returns.
///
/// - The task is cancelled when the client goes away, when the request passes
///   `--async-timeout` (the client then gets 504), and when a draining worker reaches
///   `--graceful-timeout` (503). Check `Task.isCancelled` or use cancellable awaits.
/// - A thrown error answers 500 (and is logged).
/// - Code between awaits runs on the worker's event loop like a synchronous handler: it must
///   not block (a blocking call stalls every request of the worker, and, past `--timeout`,
///   gets the worker killed).
///
/// A handler may serve some requests synchronously and others asynchronously (a router with
/// both kinds of routes, `DebugHandler`): `servesAsync(_:)` says which, per request; the others
/// go to the synchronous `Handler.handle(_:context:)`. By default every request is async.
///
/// ```swift
/// struct Lookup: AsyncHandler {
///     func handle(_ request: HTTPRequest, context: HandlerContext) async throws -> HTTPResponse {
///         try await Task.sleep(for: .milliseconds(20)) // stands in for a database call
///         return .text(200, "found\n")
///     }
/// }
/// HandlerRegistry.register("lookup") { _ in Lookup() }
/// ```
public protocol AsyncHandler: Handler {
    /// Answers one request, as a task whose executor is the worker's event loop.
    func handle(_ request: HTTPRequest, context: HandlerContext) async throws -> HTTPResponse

    /// Whether `request` is answered by the async `handle` (default: every request). Called
    /// on the event loop for each request, before either `handle`: keep it cheap.
    func servesAsync(_ request: HTTPRequest) -> Bool
}

extension AsyncHandler {
    /// Every request is async.
    public func servesAsync(_ request: HTTPRequest) -> Bool { true }

    /// The synchronous entry point of a handler that serves every request asynchronously:
    /// never called by herdd then (`servesAsync` is true); 500 if it is.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        .errorResponse(status: 500)
    }

    /// An async request never blocks its worker, so an async-only handler's connections need
    /// no watching for hand-off. A handler that also serves blocking requests says `true`.
    public var mayBlock: Bool { false }
}
