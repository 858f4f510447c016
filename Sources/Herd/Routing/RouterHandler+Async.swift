import Handlers

extension RouterHandler {
    /// The worker's one call per request: matches it once; a sync route, 404 and 405 are
    /// answered now, an async route's answer is the work the worker runs as a task (it carries
    /// the match: nothing is kept in the router between calls).
    public func respond(to request: HTTPRequest, context handlerContext: HandlerContext) -> HandlerOutcome {
        let match = match(request)
        guard case .found(let route, let parameters) = match, case .async(let endpoint) = route.responder else {
            return .response(answer(request, context: handlerContext, match: match))
        }
        return .async {
            try await self.answerAsync(request, context: handlerContext, route: endpoint, parameters: parameters)
        }
    }

    /// Whether the request's route streams its body (asked by the worker at the end of a head
    /// with a body): a second match, paid only by routers that have such a route.
    public func streamsBody(of head: HTTPRequest) -> Bool {
        guard trie.anyRouteStreamsBody, case .found(let route, _) = match(head) else { return false }
        return route.streamsBody
    }

    /// Answers a request whose route is async: the router's middleware and the route's, then
    /// the route; errors map as for synchronous routes (``HTTPError`` to its response, others
    /// to a logged 500 with the request id). Cancellation (client gone, deadline, drain) is
    /// passed on to the worker, which answers or drops the request itself.
    func answerAsync(_ request: HTTPRequest, context handlerContext: HandlerContext, route endpoint: @escaping AsyncResponder,
                     parameters: Parameters) async throws -> HTTPResponse {
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
