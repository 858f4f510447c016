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
    /// The worker-level context (listener, worker slot, pid, peer).
    public let handlerContext: HandlerContext
    /// The request body as it streams in, for a route registered with `streamsBody: true`
    /// (nil otherwise: the body is in `request.body`).
    public var requestBody: RequestBodyStream? { handlerContext.requestBody }
    /// Values middleware passes to routes (an authenticated user, say), by key.
    public var values: [String: any Sendable] = [:]

    /// Where the request id comes from; the text is made when it is read (most requests never
    /// read it: no per-request formatting on the hot path).
    enum RequestIDSource: Sendable {
        case given(String)
        case generated(prefix: String, number: UInt64)
    }
    let requestIDSource: RequestIDSource
    /// The router's logger; the request's metadata is added when ``logger`` is read.
    let baseLogger: Logger
    private var replacedLogger: Logger?

    /// A context for a request (the router makes one per request; tests make their own).
    public init(handlerContext: HandlerContext, requestID: String, logger: Logger, parameters: Parameters = Parameters()) {
        self.init(handlerContext: handlerContext, requestIDSource: .given(requestID), logger: logger, parameters: parameters)
    }

    init(handlerContext: HandlerContext, requestIDSource: RequestIDSource, logger: Logger, parameters: Parameters = Parameters()) {
        self.handlerContext = handlerContext
        self.requestIDSource = requestIDSource
        self.baseLogger = logger
        self.parameters = parameters
    }

    /// The request's id: the client's `X-Request-ID` when it sent a short printable one, else
    /// made by the worker (unique per worker process). ``RequestIDMiddleware`` echoes it.
    public var requestID: String {
        switch requestIDSource {
        case .given(let id): id
        case .generated(let prefix, let number): prefix + "-" + String(number, radix: 16)
        }
    }

    /// A logger with `request_id`, `worker_id` and `listener` metadata (journald fields
    /// HERDD_REQUEST_ID, HERDD_WORKER_ID, HERDD_LISTENER under systemd). Set it to change the
    /// logger for the rest of the request (middleware adding metadata).
    public var logger: Logger {
        get {
            if let replacedLogger { return replacedLogger }
            var logger = baseLogger
            logger[metadataKey: "request_id"] = "\(requestID)"
            logger[metadataKey: "listener"] = "\(handlerContext.listenerName)"
            logger[metadataKey: "worker_id"] = "\(handlerContext.workerID)"
            return logger
        }
        set { replacedLogger = newValue }
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
