import Handlers

/// An error that knows the response it stands for. Throw one from a route or middleware; the
/// router sends its response. ``HTTPError`` is the usual one; conform your own error types to
/// answer with their own bodies.
public protocol HTTPResponseError: Error {
    /// The status of the response.
    var status: HTTPStatus { get }
    /// The response for `request`.
    func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse
}

/// A thrown error that becomes a response: `throw HTTPError(.notFound, message: "no note 7")`.
///
/// The body is JSON, `{"error": "no note 7", "status": 404}`, when the client accepts JSON (no
/// `Accept` field, or one that names `application/json`, `*/*`, `application/*` or a `+json`
/// type), and the message as text otherwise. Without a message it is the reason phrase.
public struct HTTPError: HTTPResponseError, Sendable, CustomStringConvertible {
    /// The response status.
    public var status: HTTPStatus
    /// Extra header fields for the response (`Allow`, `WWW-Authenticate`, ...).
    public var headers: HTTPHeaders
    /// What the client is told; nil: the reason phrase.
    public var message: String?

    /// An error answered with `status` and `message`.
    public init(_ status: HTTPStatus, message: String? = nil) {
        self.init(status, headers: HTTPHeaders(), message: message)
    }

    /// An error answered with `status`, extra `headers` and `message`.
    public init(_ status: HTTPStatus, headers: HTTPHeaders, message: String? = nil) {
        self.status = status
        self.headers = headers
        self.message = message
    }

    /// "HTTPError(404 Not Found: no note 7)".
    public var description: String { "HTTPError(\(status)\(message.map { ": \($0)" } ?? ""))" }

    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        ErrorBody.response(status: status, message: message ?? status.reasonPhrase.lowercased(),
                           headers: headers, for: request)
    }
}

/// The body of an error response, JSON or text by the request's `Accept`.
enum ErrorBody {
    static func response(status: HTTPStatus, message: String, headers: HTTPHeaders, for request: HTTPRequest) -> HTTPResponse {
        var response: HTTPResponse
        if acceptsJSON(request) {
            let body = "{\"error\":\(JSONText.quote(message)),\"status\":\(status.code)}\n"
            response = .text(status.code, body, contentType: "application/json")
        } else {
            response = .text(status.code, message + "\n")
        }
        for (name, value) in headers { response.headers.set(name, value) }
        return response
    }

    /// No `Accept` (anything goes), or one that lists a JSON type or a wildcard.
    static func acceptsJSON(_ request: HTTPRequest) -> Bool {
        let accept = request.headers.values("Accept")
        if accept.isEmpty { return true }
        for value in accept {
            for item in value.split(separator: ",") {
                let type = item.split(separator: ";").first.map { $0.trimmingSpacesAndTabs().lowercased() } ?? ""
                if type == "*/*" || type == "application/*" || type == "application/json" || type.hasSuffix("+json") {
                    return true
                }
            }
        }
        return false
    }
}
