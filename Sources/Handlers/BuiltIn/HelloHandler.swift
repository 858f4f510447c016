/// Replies "hello\n" to everything.
public struct HelloHandler: Handler {
    public init() {}

    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        .text(200, "hello\n")
    }
}

/// Liveness probe: "ok pid=<pid> worker=<id>\n", never cached.
public struct HealthHandler: Handler {
    public init() {}

    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        var r = HTTPResponse.text(200, "ok pid=\(context.pid) worker=\(context.workerID)\n")
        r.headers.set("Cache-Control", "no-store")
        return r
    }
}
