import Handlers
import Logging
import Synchronization

/// A built ``Router``: the handler a listener serves. Immutable, so one instance serves every
/// request of a worker; each worker builds its own (HerdServer.main runs the router's builder
/// in the worker, after it started).
///
/// It is an `AsyncHandler`: ``respond(to:context:)`` matches the request once and answers a
/// sync route, 404 or 405 at once, or gives the worker an async route's work to run as a task.
public final class RouterHandler: AsyncHandler, DecidesBlockingPerRequest, Sendable {
    let trie: RouteTrie
    let middlewares: [any RouterMiddleware]
    /// `middlewares` as async middleware, for async routes (empty without async routes).
    let asyncMiddlewares: [any AsyncRouterMiddleware]
    /// The base of every request's logger (labelled with the program's name).
    let logger: Logger
    /// Requests this handler answered: the generated request ids are "<prefix>-<count>".
    private let requestCounter = Atomic<UInt64>(0)
    /// Random per handler (so per worker process): ids stay unique across workers and restarts.
    private let idPrefix: String

    init(trie: RouteTrie, middlewares: [any RouterMiddleware], asyncMiddlewares: [any AsyncRouterMiddleware] = [],
         label: String = "herd.router") {
        self.trie = trie
        self.middlewares = middlewares
        self.asyncMiddlewares = asyncMiddlewares
        self.logger = Logger(label: label)
        let random = UInt32.random(in: .min ... .max)
        let hex = String(random, radix: 16)
        self.idPrefix = String(repeating: "0", count: 8 - hex.count) + hex
    }

    /// Whether any route may block (the worker then sets up dispatch for the listener; each
    /// request still decides by its route).
    public var mayBlock: Bool { trie.anyRouteMayBlock }

    /// The synchronous answer, for callers that cannot await: matches the request, runs the
    /// router's middleware around the route (or the 404 or 405 answer), and turns a thrown error
    /// into its response. An async route answers 500 here (herdd's worker calls
    /// ``respond(to:context:)``, which runs it).
    public func handle(_ request: HTTPRequest, context handlerContext: HandlerContext) -> HTTPResponse {
        answer(request, context: handlerContext, match: match(request))
    }

    /// The synchronous answer for `match` (a sync route, 404, 405; an async route, reached by a
    /// caller of the synchronous `handle`, gets 500).
    func answer(_ request: HTTPRequest, context handlerContext: HandlerContext, match: RouteTrie.Match) -> HTTPResponse {
        var context = RequestContext(handlerContext: handlerContext, requestIDSource: requestID(request), logger: logger)
        let endpoint: SyncResponder
        switch match {
        case .found(let route, let parameters):
            context.parameters = parameters
            if route.mayBlock { handlerContext.mayBlockNow() }
            switch route.responder {
            case .sync(let respond): endpoint = respond
            case .async: endpoint = Self.asyncRouteCalledSynchronously
            }
        case .methodNotAllowed(let allow):
            endpoint = { _, _ in throw HTTPError(.methodNotAllowed, headers: ["Allow": allow]) }
        case .notFound:
            endpoint = Self.notFound
        }
        do {
            return try runMiddleware(middlewares, from: 0, request, context, endpoint: endpoint)
        } catch {
            return Self.response(for: error, request: request, context: context)
        }
    }

    /// The route pattern `method` and `path` match ("GET /notes/:id"), or nil: what the router
    /// does first for every request, alone (for logs, tests and bench/route-match).
    public func matchedRoute(method: HTTPMethod, path: String) -> String? {
        guard case .found(let route, _) = trie.match(path: path, method: method) else { return nil }
        return route.description
    }

    func match(_ request: HTTPRequest) -> RouteTrie.Match {
        trie.match(path: request.path, method: HTTPMethod(rawValue: request.method))
    }

    private static let notFound: SyncResponder = { _, _ in throw HTTPError(.notFound) }
    private static let asyncRouteCalledSynchronously: SyncResponder = { _, _ in
        throw HTTPError(.internalServerError, message: "async route called synchronously")
    }

    /// The response for a thrown error: an ``HTTPResponseError``'s own, else a 500 that tells
    /// the client nothing but the request id; the error itself goes to the log.
    static func response(for error: any Error, request: HTTPRequest, context: RequestContext) -> HTTPResponse {
        if let known = error as? any HTTPResponseError, let response = try? known.response(from: request, context: context) {
            return response
        }
        context.logger.error("\(request.method) \(request.path): unhandled error: \(error)", metadata: [
            "event": "handler-error", "error_type": "\(type(of: error))",
        ])
        return ErrorBody.response(status: .internalServerError,
                                  message: "internal server error (request id \(context.requestID))",
                                  headers: [:], for: request)
    }

    /// The client's `X-Request-ID` when it is 1...128 visible ASCII characters, else a new one.
    func requestID(_ request: HTTPRequest) -> RequestContext.RequestIDSource {
        if let given = request.headers["X-Request-ID"], !given.isEmpty, given.utf8.count <= 128,
           given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return .given(given)
        }
        return .generated(prefix: idPrefix, number: requestCounter.wrappingAdd(1, ordering: .relaxed).newValue)
    }
}
