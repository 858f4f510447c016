import Handlers
import HerdSys

/// The routes of a server: `router.get("notes/:id") { request, context in ... }`, as in
/// Hummingbird 2. Build it, then serve it with `HerdServer.main(name:router:)` (each worker
/// builds its own), or turn it into a `Handler` with ``handler()``.
///
/// Paths: constants, `:name` (or `{name}`) parameters, `*` (any one segment) and `**` (the rest).
/// Every GET route also answers HEAD; a known path with another method is answered 405 with
/// `Allow`; anything else 404. A route's closure may throw: an ``HTTPError`` becomes its
/// response, any other error a 500 that the client learns nothing from (it is logged with the
/// request id).
///
/// A route's code may block (a database query): that is what prefork workers are for, and the
/// worker hands its other connections to idle workers meanwhile. A route that never blocks
/// says `mayBlock: false` and skips that machinery (`router.get("health", mayBlock: false)`).
///
/// A closure that awaits (`router.get("todos/:id") { request, context async throws in ... }`)
/// makes an async route: it runs as a task on the worker's event loop, which serves other
/// requests while it awaits (docs/async.md, "Async routes"). Which kind a route is follows
/// from its closure; a closure without `await` is a synchronous route.
public final class Router: RouterMethods {
    var routes: [Route] = []
    var middlewares: [any RouterMiddleware] = []

    /// An empty router.
    public init() {}

    /// Adds middleware run around every request (404 and 405 included), the first added outermost.
    @discardableResult
    public func add(middleware: any RouterMiddleware) -> Router {
        middlewares.append(middleware)
        return self
    }

    /// Adds middleware from a closure: `router.add { request, context, next in try next(request, context) }`.
    @discardableResult
    public func add(_ middleware: @escaping @Sendable (HTTPRequest, RequestContext, (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse) -> Router {
        add(middleware: ClosureMiddleware(body: middleware))
    }

    /// Routes under `prefix` ("api/v1"), which may have middleware of their own.
    public func group(_ prefix: String) -> RouterGroup {
        RouterGroup(router: self, prefix: PathSegment.parse(prefix), middlewares: [])
    }

    /// Registers a route (every method function ends here).
    @discardableResult
    public func addRoute(_ path: String, method: HTTPMethod, mayBlock: Bool = true, responder: @escaping SyncResponder) -> Router {
        register(PathSegment.parse(path), method: method, mayBlock: mayBlock, middlewares: [], respond: responder)
        return self
    }

    /// Registers an `async` route (every async method function ends here). It never blocks its
    /// worker, so it has no `mayBlock`: the worker's dispatch machinery is not started for it.
    @discardableResult
    public func addAsyncRoute(_ path: String, method: HTTPMethod, responder: @escaping AsyncResponder) -> Router {
        addAsyncRoute(path, method: method, streamsBody: false, responder: responder)
    }

    /// Registers an `async` route whose request body streams in when `streamsBody`.
    @discardableResult
    public func addAsyncRoute(_ path: String, method: HTTPMethod, streamsBody: Bool, responder: @escaping AsyncResponder) -> Router {
        registerAsync(PathSegment.parse(path), method: method, streamsBody: streamsBody, middlewares: [], respond: responder)
        return self
    }

    func register(_ path: [PathSegment], method: HTTPMethod, mayBlock: Bool, middlewares: [any RouterMiddleware],
                  respond: @escaping SyncResponder) {
        var wrapped = respond
        if !middlewares.isEmpty {
            wrapped = { request, context in try runMiddleware(middlewares, from: 0, request, context, endpoint: respond) }
        }
        routes.append(Route(method: method, path: path, responder: .sync(wrapped), mayBlock: mayBlock))
    }

    func registerAsync(_ path: [PathSegment], method: HTTPMethod, streamsBody: Bool = false, middlewares: [any RouterMiddleware],
                       respond: @escaping AsyncResponder) {
        var wrapped = respond
        if !middlewares.isEmpty {
            let asyncMiddlewares = AsyncRouterMiddlewareCheck.require(middlewares, around: "\(method) \(PathSegment.format(path))")
            wrapped = { request, context in
                try await runAsyncMiddleware(asyncMiddlewares, from: 0, request, context, endpoint: respond)
            }
        }
        routes.append(Route(method: method, path: path, responder: .async(wrapped), mayBlock: false, streamsBody: streamsBody))
    }

    /// The router as a handler for a listener; later changes to the router do not affect it.
    /// Stops the program if the router has async routes and middleware that cannot run around
    /// them (a plain ``RouterMiddleware``; see ``AsyncRouterMiddleware``): a programming error
    /// found at startup, not per request.
    public func handler() -> RouterHandler {
        var asyncMiddlewares: [any AsyncRouterMiddleware] = []
        if routes.contains(where: { $0.responder.isAsync }) {
            asyncMiddlewares = AsyncRouterMiddlewareCheck.require(middlewares, around: "the router's async routes")
        }
        return RouterHandler(trie: RouteTrie(routes), middlewares: middlewares, asyncMiddlewares: asyncMiddlewares,
                             label: ProgramName.current)
    }

    /// "GET /notes/:id" lines, in registration order (for logs and tests).
    public var routeDescriptions: [String] {
        routes.map { "\($0.method) \(PathSegment.format($0.path))" }
    }
}

/// Routes under a path prefix, sharing middleware: `let api = router.group("api").add(middleware: Auth())`.
public struct RouterGroup: RouterMethods {
    let router: Router
    let prefix: [PathSegment]
    let middlewares: [any RouterMiddleware]

    /// The group with `middleware` added for routes registered through the returned value.
    public func add(middleware: any RouterMiddleware) -> RouterGroup {
        RouterGroup(router: router, prefix: prefix, middlewares: middlewares + [middleware])
    }

    /// A nested group under `prefix`, with this group's middleware.
    public func group(_ prefix: String) -> RouterGroup {
        RouterGroup(router: router, prefix: self.prefix + PathSegment.parse(prefix), middlewares: middlewares)
    }

    @discardableResult
    public func addRoute(_ path: String, method: HTTPMethod, mayBlock: Bool = true, responder: @escaping SyncResponder) -> RouterGroup {
        router.register(prefix + PathSegment.parse(path), method: method, mayBlock: mayBlock, middlewares: middlewares, respond: responder)
        return self
    }

    @discardableResult
    public func addAsyncRoute(_ path: String, method: HTTPMethod, responder: @escaping AsyncResponder) -> RouterGroup {
        addAsyncRoute(path, method: method, streamsBody: false, responder: responder)
    }

    @discardableResult
    public func addAsyncRoute(_ path: String, method: HTTPMethod, streamsBody: Bool, responder: @escaping AsyncResponder) -> RouterGroup {
        router.registerAsync(prefix + PathSegment.parse(path), method: method, streamsBody: streamsBody,
                             middlewares: middlewares, respond: responder)
        return self
    }
}
