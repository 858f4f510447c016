/// A response status, named the way swift-http-types names them (`.ok`, `.notFound`), so a typo
/// does not compile. `HTTPResponse.status` stays an `Int` on the wire side (the worker counts
/// status classes from it); this type is what handlers and `HTTPResponse(status: .created)`
/// spell. Any code 100...999 can be made with `HTTPStatus(code:)`.
public struct HTTPStatus: Sendable, Hashable, CustomStringConvertible {
    /// The three-digit code.
    public let code: Int

    /// A status with `code` (not checked: the server sends anything outside 100...999 as 500).
    public init(code: Int) { self.code = code }

    /// The standard reason phrase ("Not Found"), "" for an unregistered code.
    public var reasonPhrase: String { httpReasonPhrase(code) }

    /// "404 Not Found".
    public var description: String { "\(code) \(reasonPhrase)" }

    public static let `continue` = HTTPStatus(code: 100)
    public static let switchingProtocols = HTTPStatus(code: 101)
    public static let ok = HTTPStatus(code: 200)
    public static let created = HTTPStatus(code: 201)
    public static let accepted = HTTPStatus(code: 202)
    public static let noContent = HTTPStatus(code: 204)
    public static let partialContent = HTTPStatus(code: 206)
    public static let movedPermanently = HTTPStatus(code: 301)
    public static let found = HTTPStatus(code: 302)
    public static let seeOther = HTTPStatus(code: 303)
    public static let notModified = HTTPStatus(code: 304)
    public static let temporaryRedirect = HTTPStatus(code: 307)
    public static let permanentRedirect = HTTPStatus(code: 308)
    public static let badRequest = HTTPStatus(code: 400)
    public static let unauthorized = HTTPStatus(code: 401)
    public static let forbidden = HTTPStatus(code: 403)
    public static let notFound = HTTPStatus(code: 404)
    public static let methodNotAllowed = HTTPStatus(code: 405)
    public static let notAcceptable = HTTPStatus(code: 406)
    public static let requestTimeout = HTTPStatus(code: 408)
    public static let conflict = HTTPStatus(code: 409)
    public static let gone = HTTPStatus(code: 410)
    public static let lengthRequired = HTTPStatus(code: 411)
    public static let preconditionFailed = HTTPStatus(code: 412)
    public static let contentTooLarge = HTTPStatus(code: 413)
    public static let uriTooLong = HTTPStatus(code: 414)
    public static let unsupportedMediaType = HTTPStatus(code: 415)
    public static let rangeNotSatisfiable = HTTPStatus(code: 416)
    public static let unprocessableContent = HTTPStatus(code: 422)
    public static let tooManyRequests = HTTPStatus(code: 429)
    public static let internalServerError = HTTPStatus(code: 500)
    public static let notImplemented = HTTPStatus(code: 501)
    public static let badGateway = HTTPStatus(code: 502)
    public static let serviceUnavailable = HTTPStatus(code: 503)
    public static let gatewayTimeout = HTTPStatus(code: 504)
}

/// A request method, named as swift-http-types names them (`.get`, `.post`). Methods are
/// case-sensitive (RFC 9110 9.1); any token can be made with `HTTPMethod(rawValue:)`.
public struct HTTPMethod: Sendable, Hashable, RawRepresentable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The method token as sent ("GET").
    public let rawValue: String

    /// The method `rawValue` (case-sensitive).
    public init(rawValue: String) { self.rawValue = rawValue }

    /// `"PURGE"` as a method.
    public init(stringLiteral value: String) { self.rawValue = value }

    /// The token.
    public var description: String { rawValue }

    public static let get = HTTPMethod(rawValue: "GET")
    public static let head = HTTPMethod(rawValue: "HEAD")
    public static let post = HTTPMethod(rawValue: "POST")
    public static let put = HTTPMethod(rawValue: "PUT")
    public static let patch = HTTPMethod(rawValue: "PATCH")
    public static let delete = HTTPMethod(rawValue: "DELETE")
    public static let options = HTTPMethod(rawValue: "OPTIONS")
    public static let connect = HTTPMethod(rawValue: "CONNECT")
    public static let trace = HTTPMethod(rawValue: "TRACE")
}

extension HTTPResponse {
    /// A response with a typed status: `HTTPResponse(status: .created, headers: ["Location": "/n/1"])`.
    public init(status: HTTPStatus, headers: HTTPHeaders = HTTPHeaders(), body: ResponseBody = .bytes([])) {
        self.init(status: status.code, headers: headers, body: body)
    }

    /// The status as a typed value.
    public var httpStatus: HTTPStatus {
        get { HTTPStatus(code: status) }
        set { status = newValue.code }
    }
}

extension HTTPRequest {
    /// The method as a typed value (`request.httpMethod == .post`).
    public var httpMethod: HTTPMethod { HTTPMethod(rawValue: method) }
}
