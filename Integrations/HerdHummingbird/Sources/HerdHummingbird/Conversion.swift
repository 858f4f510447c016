// Between herdd's HTTP types (HerdHTTP, through Herd) and Hummingbird's (swift-http-types'
// HTTPRequest/HTTPResponse, HummingbirdCore's Request/Response). Both modules name their types
// HTTPRequest and HTTPResponse, hence the module-qualified names.
import Herd
import HTTPTypes
import Hummingbird
import NIOCore

enum Conversion {
    /// Hummingbird's request for herdd's, as Hummingbird's HTTP/1 server builds it
    /// (NIOHTTPTypesHTTP1): the first Host header becomes the authority and leaves the fields,
    /// the scheme is "http", the path is the request target (origin form, query included).
    /// The body: `streamed`, herdd's stream of a body that arrives while the route runs
    /// (docs/hummingbird.md, "Request bodies"), or else the one buffer herdd read whole (up to
    /// --max-body). Nil when the method is not a token swift-http-types accepts.
    static func request(_ request: Herd.HTTPRequest, streamed: RequestBodyStream? = nil) -> Hummingbird.Request? {
        guard let method = HTTPTypes.HTTPRequest.Method(request.method) else { return nil }
        var fields = HTTPFields()
        fields.reserveCapacity(request.headers.count)
        var authority: String?
        for (name, value) in request.headers {
            if authority == nil, name.utf8.count == 4, name.lowercased() == "host" {
                authority = value
                continue
            }
            // herdd's parser already refused names that are not tokens; this cannot fail for them.
            guard let fieldName = HTTPField.Name(name) else { continue }
            fields.append(HTTPField(name: fieldName, value: value))
        }
        let head = HTTPTypes.HTTPRequest(method: method, scheme: "http", authority: authority,
                                         path: originFormTarget(request.target), headerFields: fields)
        if let streamed {
            return Hummingbird.Request(head: head, body: RequestBody(asyncSequence: StreamedRequestBody(stream: streamed)))
        }
        let body = request.body.isEmpty ? ByteBuffer() : ByteBuffer(bytes: request.body)
        return Hummingbird.Request(head: head, body: RequestBody(buffer: body))
    }

    /// "/a?b" as is; "http://host/a?b" (absolute form, RFC 9112 3.2.2) as "/a?b".
    static func originFormTarget(_ target: String) -> String {
        guard !target.hasPrefix("/"), target != "*", let schemeEnd = target.range(of: "://") else { return target }
        let afterAuthority = target[schemeEnd.upperBound...]
        guard let pathStart = afterAuthority.firstIndex(where: { $0 == "/" || $0 == "?" }) else { return "/" }
        let rest = afterAuthority[pathStart...]
        return rest.hasPrefix("/") ? String(rest) : "/" + rest
    }

    /// herdd's response for Hummingbird's: status, fields and the body (see docs/hummingbird.md,
    /// "Response bodies"). A body of known length (JSON, a buffer, a file) is written into one
    /// buffer and sent with `Content-Length`; one of unknown length (an async sequence, a
    /// writer closure) streams: herdd sends each write as it comes (``StreamedBody``).
    /// Framing fields (Content-Length, Transfer-Encoding, Connection) are herdd's to write.
    /// Trailers a writer passes to `finish` are dropped: herdd's responses have none.
    static func response(_ response: Hummingbird.Response) async throws -> Herd.HTTPResponse {
        var headers = Herd.HTTPHeaders()
        headers.reserveCapacity(response.headers.count)
        for field in response.headers {
            switch field.name {
            case .contentLength, .transferEncoding, .connection: continue
            default: headers.add(field.name.rawName, field.value)
            }
        }
        if response.body.contentLength == nil {
            let body = response.body
            return Herd.HTTPResponse(status: response.status.code, headers: headers, body: .stream(StreamedBody { writer in
                try await body.write(StreamingBodyWriter(writer: writer))
            }))
        }
        let collector = BodyCollector()
        try await response.body.write(CollectingBodyWriter(collector: collector))
        return Herd.HTTPResponse(status: response.status.code, headers: headers, body: .bytes(collector.bytes))
    }
}

/// The bytes a response body writer wrote. One per response, used by one task.
final class BodyCollector {
    var bytes: [UInt8] = []
}

/// A Hummingbird body writer that appends to a ``BodyCollector`` (a class: `ResponseBody.write`
/// consumes the writer, so the bytes must live outside it).
struct CollectingBodyWriter: ResponseBodyWriter {
    let collector: BodyCollector

    mutating func write(_ buffer: ByteBuffer) async throws {
        collector.bytes.append(contentsOf: buffer.readableBytesView)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// A Hummingbird body writer that passes each buffer on to herdd's ``StreamedBody`` writer
/// (which waits while the client is behind).
struct StreamingBodyWriter: ResponseBodyWriter {
    let writer: StreamedBody.Writer

    mutating func write(_ buffer: ByteBuffer) async throws {
        try await writer.write(Array(buffer.readableBytesView))
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

/// herdd's streamed request body as Hummingbird's `RequestBody` wants it: buffers as they
/// arrive. Its errors pass through (`RequestBodyError`: herdd answers 413, 408 or 400 itself).
struct StreamedRequestBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let stream: RequestBodyStream

    struct AsyncIterator: AsyncIteratorProtocol {
        let stream: RequestBodyStream
        mutating func next() async throws -> ByteBuffer? {
            try await stream.next().map { ByteBuffer(bytes: $0) }
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
}
