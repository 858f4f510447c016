/// Replies "hello\n" to everything.
package struct HelloHandler: Handler {
    /// Answers at once: no dispatch of other connections while it runs.
    package var mayBlock: Bool { false }

    /// The handler (`hello` in a handler spec).
    package init() {}

    /// Built once: the response is the same for every request (no allocation per request).
    private static let response = HTTPResponse.text(200, "hello\n")

    /// 200 `hello`, whatever the request.
    package func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        HelloHandler.response
    }
}

/// Liveness probe: "ok pid=<pid> worker=<id>\n", never cached.
package struct HealthHandler: Handler {
    /// Answers at once: no dispatch of other connections while it runs.
    package var mayBlock: Bool { false }

    /// The handler (`health` in a handler spec).
    package init() {}

    /// 200 `ok pid=... worker=...` with `Cache-Control: no-store`.
    package func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        var r = HTTPResponse.text(200, "ok pid=\(context.pid) worker=\(context.workerID)\n")
        r.headers.set("Cache-Control", "no-store")
        return r
    }
}
