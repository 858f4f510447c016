import Handlers
import Logging

/// What a route's closure and the middleware know besides the request: the path's parameters,
/// a logger, the request id, and where the request runs (listener, worker, peer).
///
/// The shape of Hummingbird's `BasicRequestContext` (`context.parameters`, `context.logger`),
/// as one concrete type: herdd's router is built once per worker and the context never leaves
/// the worker's thread, so there is no need for a context generic over its source.
public struct RequestContext: Sendable {
    /// The values of the route's `:parameters` and `**`.
    public var parameters: Parameters
    /// A logger with `request_id`, `worker_id` and `listener` metadata (journald fields
    /// HERDD_REQUEST_ID, HERDD_WORKER_ID, HERDD_LISTENER under systemd).
    public var logger: Logger
    /// The request's id: the client's `X-Request-ID` when it sent a short printable one, else
    /// made by the worker (unique per worker process). ``RequestIDMiddleware`` echoes it.
    public let requestID: String
    /// The worker-level context (listener, worker slot, pid, peer).
    public let handlerContext: HandlerContext
    /// Values middleware passes to routes (an authenticated user, say), by key.
    public var values: [String: any Sendable] = [:]

    /// A context for a request; the router makes one per request.
    public init(handlerContext: HandlerContext, requestID: String, logger: Logger, parameters: Parameters = Parameters()) {
        self.handlerContext = handlerContext
        self.requestID = requestID
        self.logger = logger
        self.parameters = parameters
    }

    /// Name of the listener the request came from.
    public var listenerName: String { handlerContext.listenerName }
    /// The worker's slot number (0-based).
    public var workerID: Int { handlerContext.workerID }
    /// The worker process's pid.
    public var pid: Int32 { handlerContext.pid }
    /// The peer's address as text ("127.0.0.1:51234").
    public var peer: String { handlerContext.peer }
}
