import HerdHTTP

/// What answers a matched route, with its middleware already wrapped around it.
///
/// An enum so that the route table can hold other kinds of responder without changing the
/// synchronous API: issue 23 adds `case async(...)` for `async throws` closures run on the
/// worker's event loop as a Swift concurrency executor; `RouterHandler` then switches on it.
enum Responder: Sendable {
    /// A closure run on the worker's event loop, returning the whole response.
    case sync(SyncResponder)
}


/// One registered route: method, pattern and what answers it.
struct Route: Sendable {
    let method: HTTPMethod
    let path: [PathSegment]
    let responder: Responder
    /// Whether the route's code may block (database, upstream); false routes skip the
    /// worker's dispatch machinery (Handler.mayBlock).
    let mayBlock: Bool
    /// "GET /notes/:id", made once.
    let description: String

    init(method: HTTPMethod, path: [PathSegment], responder: Responder, mayBlock: Bool) {
        self.method = method
        self.path = path
        self.responder = responder
        self.mayBlock = mayBlock
        self.description = "\(method) \(PathSegment.format(path))"
    }
}
