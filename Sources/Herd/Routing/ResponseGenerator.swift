import FoundationEssentials
import Handlers

/// Something a route may return: it makes the response. `HTTPResponse`, `String` (text),
/// `HTTPStatus` (an empty body) and ``EditedResponse`` are generators; a route returning any
/// other `Encodable` value is answered with it as JSON (Router+Methods.swift).
public protocol ResponseGenerator: SendableMetatype {
    /// The response for `request`.
    func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse
}

/// A type sent as JSON: conform a `Codable` type to return it from a route, as with
/// Hummingbird (`extension Note: ResponseEncodable {}`). Any `Encodable` works without it.
public protocol ResponseEncodable: Encodable, ResponseGenerator {}

extension ResponseEncodable {
    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        try JSONBody.response(self)
    }
}

extension HTTPResponse: ResponseGenerator {
    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse { self }
}

extension String: ResponseGenerator {
    /// 200 with the string as `text/plain; charset=utf-8`.
    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        .text(200, self)
    }
}

extension HTTPStatus: ResponseGenerator {
    /// The status with an empty body (`return HTTPStatus.noContent`).
    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        HTTPResponse(status: self)
    }
}

/// A generated response with another status and extra header fields:
/// `EditedResponse(status: .created, headers: ["Location": "/notes/7"], response: note)`.
public struct EditedResponse<Generator: ResponseGenerator>: ResponseGenerator {
    /// Status to send instead of the generator's (nil: keep it).
    public var status: HTTPStatus?
    /// Fields set on the generated response (replacing fields of the same name).
    public var headers: HTTPHeaders
    /// What makes the body.
    public var response: Generator

    /// `response` with `status` and `headers`.
    public init(status: HTTPStatus? = nil, headers: HTTPHeaders = [:], response: Generator) {
        self.status = status
        self.headers = headers
        self.response = response
    }

    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        var r = try response.response(from: request, context: context)
        if let status { r.httpStatus = status }
        for (name, value) in headers { r.headers.set(name, value) }
        return r
    }
}

extension EditedResponse {
    /// Any `Encodable` as JSON with `status` and `headers`: `EditedResponse(status: .created, json: note)`.
    public init<Value: Encodable>(status: HTTPStatus? = nil, headers: HTTPHeaders = [:], json value: Value)
    where Generator == JSONResponse<Value> {
        self.init(status: status, headers: headers, response: JSONResponse(value))
    }
}

/// Any `Encodable` value as a JSON response (what a route returning an `Encodable` sends).
public struct JSONResponse<Value: Encodable>: ResponseGenerator {
    /// The value to encode.
    public var value: Value

    /// `value` as a 200 JSON response.
    public init(_ value: Value) { self.value = value }

    public func response(from request: HTTPRequest, context: RequestContext) throws -> HTTPResponse {
        try JSONBody.response(value)
    }
}

/// JSON encoding of response bodies.
enum JSONBody {
    static func response<Value: Encodable>(_ value: Value, status: HTTPStatus = .ok) throws -> HTTPResponse {
        // A new encoder per response: JSONEncoder is a class with mutable options; one per
        // request costs less than a lock around a shared one (bench/route-match).
        let data = try JSONEncoder().encode(value)
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"], body: .bytes(Array(data)))
    }
}
