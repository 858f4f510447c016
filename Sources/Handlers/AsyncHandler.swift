/// What a handler gives its worker for one request: the response, made now, or the async work
/// that makes it. Returned by ``AsyncHandler/respond(to:context:)``, the one entry point per
/// request of a handler that may await.
public enum HandlerOutcome: Sendable {
    /// The whole response, made synchronously on the worker's event loop: queued at once, as a
    /// ``Handler``'s is.
    case response(HTTPResponse)
    /// The work that makes the response: run as a task whose executor is the worker's event
    /// loop; the connection waits for it without blocking the loop.
    case async(@Sendable () async throws -> HTTPResponse)
}

/// A handler whose requests may be answered by `async` code: it may await (a database driver,
/// an HTTP client, `Task.sleep`) without holding its worker. See docs/async.md.
///
/// The worker calls ``respond(to:context:)`` once per request, on its event loop. It returns
/// ``HandlerOutcome/response(_:)`` for a request answered at once, or
/// ``HandlerOutcome/async(_:)`` with the work to await: whatever the handler decided about the
/// request (a router's match) is captured by that closure, so it is decided once.
///
/// The async work runs as a Swift task on its worker's event loop: the loop is the task's
/// executor (no thread hop, no lock on the hot path), so one worker keeps many requests in
/// flight (up to `--worker-concurrency`) while it goes on serving its other connections. The
/// response is queued as soon as the work returns.
///
/// - The task is cancelled when the client goes away, when the request passes
///   `--async-timeout` (the client then gets 504), and when a draining worker reaches
///   `--graceful-timeout` (503). Check `Task.isCancelled` or use cancellable awaits.
/// - A thrown error answers 500 (and is logged).
/// - Code between awaits runs on the worker's event loop like a synchronous handler: it must
///   not block (a blocking call stalls every request of the worker, and, past `--timeout`,
///   gets the worker killed).
///
/// ```swift
/// struct Lookup: AsyncHandler {
///     func respond(to request: HTTPRequest, context: HandlerContext) -> HandlerOutcome {
///         if request.path == "/health" { return .response(.text(200, "ok\n")) }
///         return .async {
///             try await Task.sleep(for: .milliseconds(20)) // stands in for a database call
///             return .text(200, "found\n")
///         }
///     }
/// }
/// HandlerRegistry.register("lookup") { _ in Lookup() }
/// ```
public protocol AsyncHandler: Handler {
    /// Answers one request: the response now, or the async work that makes it. Called on the
    /// worker's event loop for every request; the synchronous part must not block unless
    /// `mayBlock` says so.
    func respond(to request: HTTPRequest, context: HandlerContext) -> HandlerOutcome

    /// Whether the body of this request streams in (docs/async.md, "Streamed request bodies"):
    /// asked once the head is complete, for requests that have a body. True: `respond` is
    /// called at once, with an empty `request.body`, and the body arrives through
    /// `context.requestBody` (a ``RequestBodyStream``) while the work runs. False (the
    /// default): the worker reads the whole body first, as for every other handler.
    func streamsBody(of head: HTTPRequest) -> Bool
}

extension AsyncHandler {
    /// The synchronous answer, for callers that cannot await (herdd's worker never calls it:
    /// it calls `respond(to:context:)`): the response when `respond` makes one now, 500 when
    /// the request needs its async work.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        switch respond(to: request, context: context) {
        case .response(let response): response
        case .async: .errorResponse(status: 500)
        }
    }

    /// An async request never blocks its worker, so a handler whose synchronous answers do not
    /// block either needs no watching of its connections for hand-off. A handler whose
    /// synchronous answers may block says `true`.
    public var mayBlock: Bool { false }

    /// Bodies are read whole before `respond` unless a handler says otherwise.
    public func streamsBody(of head: HTTPRequest) -> Bool { false }
}

extension HandlerOutcome {
    /// The response: the one made now, or the async work's, awaited (tests, and a handler that
    /// answers through another).
    public func awaitResponse() async throws -> HTTPResponse {
        switch self {
        case .response(let response): response
        case .async(let work): try await work()
        }
    }

    /// Whether the request needs its async work.
    public var isAsync: Bool {
        if case .async = self { return true }
        return false
    }
}
