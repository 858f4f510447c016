/// Per-request `mayBlock` (issue 22): a handler that serves many routes (the Herd router) knows
/// only after matching a request whether its code may block. Such a handler conforms to
/// ``DecidesBlockingPerRequest``; the worker then does not start its dispatch watcher before
/// `handle`, but gives the context this gate, and the handler opens it (``HandlerContext/mayBlockNow()``)
/// just before running a blocking route. A route that does not block (`/health`) pays nothing.
package final class BlockingGate: @unchecked Sendable {  // used on the worker's event loop thread only
    /// Starts the worker's watcher for the connection being served; set once by the worker.
    package var start: (Int32) -> Void = { _ in }
    /// The connection being served.
    package var fd: Int32 = -1
    /// Whether the handler opened the gate during this request.
    package private(set) var opened = false

    package init() {}

    /// Arms the gate for one request on `fd` (-1: note blocking, start nothing).
    package func arm(fd: Int32) {
        self.fd = fd
        opened = false
    }

    /// Called by the handler; only the first call of a request counts. With no fd (the worker
    /// is draining) it only notes that the request blocks.
    func open() {
        guard !opened else { return }
        opened = true
        if fd >= 0 { start(fd) }
    }
}

/// A handler that decides per request whether it may block, by calling
/// ``HandlerContext/mayBlockNow()`` before blocking work. Its `mayBlock` says whether any of its
/// requests may block (the worker then sets up dispatch for its listener at all).
package protocol DecidesBlockingPerRequest {}

extension HandlerContext {
    /// Tells the worker that this request's code is about to block, so that it hands the
    /// worker's other readable connections to idle workers meanwhile. Only handlers that decide
    /// per request call it (the Herd router does, for routes with `mayBlock: true`); a no-op
    /// elsewhere (tests, a listener whose handler never blocks).
    public func mayBlockNow() { blockingGate?.open() }
}
