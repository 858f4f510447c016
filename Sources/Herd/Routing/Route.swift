import HerdHTTP

/// What answers a matched route, with its middleware already wrapped around it.
///
/// Which kind decides how the worker runs the request: `RouterHandler.respond(to:context:)`
/// answers a `.sync` route at once and hands an `.async` route's work to the worker, which runs
/// it as a task on its loop executor.
enum Responder: Sendable {
    /// A closure run on the worker's event loop, returning the whole response.
    case sync(SyncResponder)
    /// An `async throws` closure run as a task whose executor is the worker's event loop.
    case async(AsyncResponder)

    var isAsync: Bool {
        if case .async = self { return true }
        return false
    }
}


/// One registered route: method, pattern and what answers it. A class: a match hands it on with
/// one retain, not one per field.
final class Route: Sendable {
    let method: HTTPMethod
    let path: [PathSegment]
    let responder: Responder
    /// Whether the route's code may block (database, upstream); false routes skip the
    /// worker's dispatch machinery (Handler.mayBlock).
    let mayBlock: Bool
    /// "GET /notes/:id", made once.
    let description: String
    /// The request body streams in to the (async) route: `context.requestBody`.
    let streamsBody: Bool

    init(method: HTTPMethod, path: [PathSegment], responder: Responder, mayBlock: Bool, streamsBody: Bool = false) {
        self.method = method
        self.path = path
        self.responder = responder
        self.mayBlock = mayBlock
        self.streamsBody = streamsBody
        self.description = "\(method) \(PathSegment.format(path))"
    }
}
