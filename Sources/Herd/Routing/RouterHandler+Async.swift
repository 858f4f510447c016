import Handlers
import Synchronization

/// The match `servesAsync` made for a request, kept for the `handle` the worker calls next, so
/// that a request is matched once. Keyed by method and path (the match depends on nothing
/// else, and the trie never changes), so a `handle` for another request simply misses.
struct LastMatch: Sendable {
    let method: String
    let path: String
    let match: RouteTrie.Match
}

extension RouterHandler {
    /// Whether the request's route is async. A router without async routes answers at once
    /// (its requests pay nothing for this); otherwise the match is kept for `handle`.
    public func servesAsync(_ request: HTTPRequest) -> Bool {
        guard trie.anyRouteIsAsync else { return false }
        let match = match(request)
        lastMatch.withLock { $0 = LastMatch(method: request.method, path: request.path, match: match) }
        if case .found(let route, _) = match { return route.responder.isAsync }
        return false
    }

    /// The match `servesAsync` kept for `request`, taken (nil: match it again). The worker
    /// calls the synchronous `handle` right after `servesAsync` on the same thread, so a sync
    /// request always finds it; an async one, whose task starts at the end of the loop's turn,
    /// may find it replaced by a later request's and matches again (cheap next to its await).
    func takeMatch(_ request: HTTPRequest) -> RouteTrie.Match? {
        guard trie.anyRouteIsAsync else { return nil }
        return lastMatch.withLock { last in
            guard let kept = last, kept.path == request.path, kept.method == request.method else { return nil }
            last = nil
            return kept.match
        }
    }

    /// Answers a request whose route is async: the router's middleware and the route's, then
    /// the route; errors map as for synchronous routes (``HTTPError`` to its response, others
    /// to a logged 500 with the request id). Cancellation (client gone, deadline, drain) is
    /// passed on to the worker, which answers or drops the request itself.
    public func handle(_ request: HTTPRequest, context handlerContext: HandlerContext) async throws -> HTTPResponse {
        let match = takeMatch(request) ?? match(request)
        guard case .found(let route, let parameters) = match, case .async(let endpoint) = route.responder else {
            // Not an async route (a caller that skipped servesAsync): the synchronous answer.
            return respond(request, context: handlerContext, match: match)
        }
        var context = RequestContext(handlerContext: handlerContext, requestIDSource: requestID(request), logger: logger)
        context.parameters = parameters
        do {
            return try await runAsyncMiddleware(asyncMiddlewares, from: 0, request, context, endpoint: endpoint)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            return Self.response(for: error, request: request, context: context)
        }
    }
}
