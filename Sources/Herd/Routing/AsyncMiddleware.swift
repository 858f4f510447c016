import Handlers

/// Middleware that can also run around async routes: the `async` twin of
/// ``RouterMiddleware/handle(_:context:next:)``, whose `next` may await.
///
/// A plain ``RouterMiddleware`` calls `next` synchronously, so it cannot wrap a route that
/// awaits without blocking the worker's loop. The router therefore requires every middleware
/// around an async route (the router's own, and the route's groups') to conform to this
/// protocol; ``Router/handler()`` stops the program at startup, naming the middleware, if one
/// does not. Synchronous routes (and 404/405 answers) still run the synchronous `handle`.
/// The built-in middleware (``RequestLogMiddleware``, ``RequestIDMiddleware``,
/// ``CORSMiddleware``) conform.
public protocol AsyncRouterMiddleware: RouterMiddleware {
    /// Answers `request` around an async route, usually by awaiting `next`.
    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse
}

/// Runs `middlewares[index...]` around the async `endpoint`.
func runAsyncMiddleware(_ middlewares: [any AsyncRouterMiddleware], from index: Int, _ request: HTTPRequest,
                        _ context: RequestContext,
                        endpoint: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse {
    if index == middlewares.count { return try await endpoint(request, context) }
    return try await middlewares[index].handle(request, context: context) { r, c in
        try await runAsyncMiddleware(middlewares, from: index + 1, r, c, endpoint: endpoint)
    }
}

/// The check that middleware around async routes can run there.
enum AsyncRouterMiddlewareCheck {
    /// `middlewares` as ``AsyncRouterMiddleware``, or the type names of those that are not.
    static func asyncVersions(of middlewares: [any RouterMiddleware]) -> Result<[any AsyncRouterMiddleware], SyncOnlyMiddleware> {
        var converted: [any AsyncRouterMiddleware] = []
        var syncOnly: [String] = []
        for middleware in middlewares {
            if let asyncCapable = middleware as? any AsyncRouterMiddleware {
                converted.append(asyncCapable)
            } else {
                syncOnly.append("\(type(of: middleware))")
            }
        }
        return syncOnly.isEmpty ? .success(converted) : .failure(SyncOnlyMiddleware(typeNames: syncOnly))
    }

    /// `middlewares` as async middleware; a sync-only one is a programming error, reported at
    /// startup (when the router is built) rather than as a 500 on every request.
    static func require(_ middlewares: [any RouterMiddleware], around what: String) -> [any AsyncRouterMiddleware] {
        switch asyncVersions(of: middlewares) {
        case .success(let converted): return converted
        case .failure(let error): preconditionFailure("\(error) cannot run around \(what)")
        }
    }
}

/// Middleware that only has the synchronous `handle` (see ``AsyncRouterMiddleware``).
struct SyncOnlyMiddleware: Error, CustomStringConvertible {
    let typeNames: [String]
    var description: String {
        "synchronous-only middleware (\(typeNames.joined(separator: ", ")); conform it to AsyncRouterMiddleware)"
    }
}
