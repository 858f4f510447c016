import HTTPTypes

/// Replies "hello\n" to everything.
public struct HelloHandler: Handler {
    /// The handler (`hello` in a handler spec).
    public init() {}

    /// Built once: the response is the same for every request (no allocation per request).
    private static let response = HTTPResponse.text(200, "hello\n")

    /// The handler as it would be written against swift-http-types: built once, like today's.
    private static let typedResponse = HTTPTypes.HTTPResponse(status: .ok, headerFields: [.contentType: "text/plain; charset=utf-8"])
    private static let body: [UInt8] = Array("hello\n".utf8)

    @inline(never)
    static func typedHandle(_ request: HTTPTypes.HTTPRequest) -> HTTPTypes.HTTPResponse {
        if request.method == .post { return HTTPTypes.HTTPResponse(status: .methodNotAllowed) }
        return typedResponse
    }

    /// Prototype of a swift-http-types handler API behind herdd's worker: the request's fields
    /// become HTTPFields (validated names), the method an HTTPRequest.Method, the response's
    /// HTTPFields are read back for the wire.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        var fields = HTTPFields()
        fields.reserveCapacity(request.headers.count)
        var authority: String? = nil
        for (name, value) in request.headers {
            // Host is the :authority pseudo-field in swift-http-types.
            if name.utf8.count == 4, name.lowercased() == "host" { authority = value; continue }
            if let n = HTTPField.Name(name) { fields.append(HTTPField(name: n, value: value)) }
        }
        let method = HTTPTypes.HTTPRequest.Method(request.method) ?? .get
        let typed = HTTPTypes.HTTPRequest(method: method, scheme: nil, authority: authority, path: request.target,
                                          headerFields: fields)
        let resp = HelloHandler.typedHandle(typed)
        var headers = HTTPHeaders()
        headers.reserveCapacity(resp.headerFields.count)
        for f in resp.headerFields { headers.add(f.name.rawName, f.value) }
        return HTTPResponse(status: resp.status.code, headers: headers, body: .bytes(HelloHandler.body))
    }
}

/// Liveness probe: "ok pid=<pid> worker=<id>\n", never cached.
public struct HealthHandler: Handler {
    /// The handler (`health` in a handler spec).
    public init() {}

    /// 200 `ok pid=... worker=...` with `Cache-Control: no-store`.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        var r = HTTPResponse.text(200, "ok pid=\(context.pid) worker=\(context.workerID)\n")
        r.headers.set("Cache-Control", "no-store")
        return r
    }
}
