import Handlers
import Logging

/// Code that runs around routes: `handle(_:context:next:)` as in Hummingbird. Call `next` to go
/// on to the next middleware or the route (with the request and context as given, or
/// changed), or answer without it (an auth check that throws `HTTPError(.unauthorized)`).
///
/// Middleware added to the router (`router.add(middleware:)`) runs for every request, including
/// ones answered 404 or 405; middleware of a group (`router.group("api").add(middleware:)`)
/// runs for that group's routes. The first added is the outermost.
public protocol RouterMiddleware: Sendable {
    /// Answers `request`, usually by calling `next`.
    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse
}

/// Logs each request after it was answered: method, path, status and duration, with the
/// context's metadata (request id, worker, listener). Errors thrown past it are logged with
/// the status they will get.
public struct RequestLogMiddleware: AsyncRouterMiddleware {
    /// Level of the log entry for each request.
    public let level: Logger.Level

    /// Logs every request at `level`.
    public init(_ level: Logger.Level = .info) { self.level = level }

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        let start = ContinuousClock.now
        do {
            let response = try next(request, context)
            log(response.status, since: start, request, context)
            return response
        } catch {
            log((error as? any HTTPResponseError)?.status.code ?? 500, since: start, request, context)
            throw error
        }
    }

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(response.status, since: start, request, context)
            return response
        } catch {
            log((error as? any HTTPResponseError)?.status.code ?? 500, since: start, request, context)
            throw error
        }
    }

    private func log(_ status: Int, since start: ContinuousClock.Instant, _ request: HTTPRequest, _ context: RequestContext) {
        let elapsed = (ContinuousClock.now - start).components
        let micros = elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000
        context.logger.log(level: level, "\(request.method) \(request.path) \(status)", metadata: [
            "event": "request", "method": "\(request.method)", "path": "\(request.path)",
            "status": "\(status)", "duration_us": "\(micros)",
        ])
    }
}

/// Sends the request id (``RequestContext/requestID``) back in `X-Request-ID`, for clients and
/// proxies that correlate logs.
public struct RequestIDMiddleware: AsyncRouterMiddleware {
    /// Echoes the request id.
    public init() {}

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        do { return stamped(try next(request, context), context) } catch { throw stamped(error, context) }
    }

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse {
        do { return stamped(try await next(request, context), context) } catch { throw stamped(error, context) }
    }

    private func stamped(_ response: HTTPResponse, _ context: RequestContext) -> HTTPResponse {
        var response = response
        response.headers.set("X-Request-ID", context.requestID)
        return response
    }

    private func stamped(_ error: any Error, _ context: RequestContext) -> any Error {
        guard var error = error as? HTTPError else { return error }
        error.headers.set("X-Request-ID", context.requestID)
        return error
    }
}

/// Cross-origin resource sharing: answers preflight `OPTIONS` requests itself and adds
/// `Access-Control-Allow-Origin` (and friends) to every response. Add it to the router (not a
/// group), so that preflights of any path reach it.
public struct CORSMiddleware: AsyncRouterMiddleware {
    /// Which origins may call.
    public enum AllowOrigin: Sendable {
        /// `*`.
        case all
        /// The request's `Origin` echoed back (with `Vary: Origin`).
        case originBased
        /// One origin.
        case custom(String)
    }

    public let allowOrigin: AllowOrigin
    public let allowHeaders: [String]
    public let allowMethods: [HTTPMethod]
    public let allowCredentials: Bool
    public let maxAge: Int?

    /// CORS with these settings.
    public init(allowOrigin: AllowOrigin = .originBased, allowHeaders: [String] = ["Accept", "Authorization", "Content-Type", "Origin"],
                allowMethods: [HTTPMethod] = [.get, .head, .post, .put, .patch, .delete, .options],
                allowCredentials: Bool = false, maxAge: Int? = nil) {
        self.allowOrigin = allowOrigin
        self.allowHeaders = allowHeaders
        self.allowMethods = allowMethods
        self.allowCredentials = allowCredentials
        self.maxAge = maxAge
    }

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        switch decide(request) {
        case .pass: return try next(request, context)
        case .preflight(let response): return response
        case .add(let fields):
            do { return Self.adding(fields, to: try next(request, context)) } catch { throw Self.adding(fields, to: error) }
        }
    }

    public func handle(_ request: HTTPRequest, context: RequestContext,
                       next: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse {
        switch decide(request) {
        case .pass: return try await next(request, context)
        case .preflight(let response): return response
        case .add(let fields):
            do { return Self.adding(fields, to: try await next(request, context)) } catch { throw Self.adding(fields, to: error) }
        }
    }

    private enum Decision {
        /// No `Origin`: not a cross-origin request.
        case pass
        case preflight(HTTPResponse)
        /// Fields for the route's response (or its thrown HTTPError).
        case add(HTTPHeaders)
    }

    private func decide(_ request: HTTPRequest) -> Decision {
        guard let origin = request.headers["Origin"] else { return .pass }
        var fields = HTTPHeaders()
        switch allowOrigin {
        case .all: fields.set("Access-Control-Allow-Origin", "*")
        case .originBased:
            fields.set("Access-Control-Allow-Origin", origin)
            fields.set("Vary", "Origin")
        case .custom(let value): fields.set("Access-Control-Allow-Origin", value)
        }
        if allowCredentials { fields.set("Access-Control-Allow-Credentials", "true") }
        if request.method == "OPTIONS", request.headers["Access-Control-Request-Method"] != nil {
            var preflight = HTTPResponse(status: .noContent, headers: fields)
            preflight.headers.set("Access-Control-Allow-Headers", allowHeaders.joined(separator: ", "))
            preflight.headers.set("Access-Control-Allow-Methods", allowMethods.map(\.rawValue).joined(separator: ", "))
            if let maxAge { preflight.headers.set("Access-Control-Max-Age", "\(maxAge)") }
            return .preflight(preflight)
        }
        return .add(fields)
    }

    private static func adding(_ fields: HTTPHeaders, to response: HTTPResponse) -> HTTPResponse {
        var response = response
        for (name, value) in fields { response.headers.set(name, value) }
        return response
    }

    private static func adding(_ fields: HTTPHeaders, to error: any Error) -> any Error {
        guard var error = error as? HTTPError else { return error }
        for (name, value) in fields { error.headers.set(name, value) }
        return error
    }
}

/// Middleware from a closure: `router.add { request, context, next in ... }`.
struct ClosureMiddleware: RouterMiddleware {
    let body: @Sendable (HTTPRequest, RequestContext, (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse

    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        try body(request, context, next)
    }
}

/// Runs `middlewares[index...]` around `endpoint` (no allocation: the closures do not escape).
func runMiddleware(_ middlewares: [any RouterMiddleware], from index: Int, _ request: HTTPRequest,
                   _ context: RequestContext, endpoint: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
    if index == middlewares.count { return try endpoint(request, context) }
    return try middlewares[index].handle(request, context: context) { r, c in
        try runMiddleware(middlewares, from: index + 1, r, c, endpoint: endpoint)
    }
}
