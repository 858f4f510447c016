/// A body produced piece by piece. `next()` returns the next piece, or nil at the end.
/// Sent with chunked encoding to HTTP/1.1 clients and close-delimited to HTTP/1.0 clients.
/// Empty pieces are allowed (they are skipped, not sent as a terminating chunk).
public protocol BodyStream: Sendable, AnyObject {
    /// The next piece of the body, or nil at its end. Called on the worker's event loop as
    /// the connection can take more, never concurrently.
    func next() -> [UInt8]?
}

/// What a ``ProducedBodyStream`` has when the connection asks for more.
public enum BodyPiece: Sendable, Equatable {
    /// These bytes (possibly empty).
    case bytes([UInt8])
    /// Nothing yet: the producer is at work (it awaits something). The stream calls the waker
    /// it was started with once it has more, its end, or its failure.
    case notYet
    /// The body is complete.
    case end
    /// The producer failed: the body cannot be completed. The connection closes without the
    /// last chunk, so the client can tell the response was cut short.
    case failed
}

/// A ``BodyStream`` fed by a producer that may be slower than the socket: an async writer
/// (server-sent events, a database cursor, an upstream passed on). Its pieces go out as they
/// come; the worker's event loop never waits for them. herdd uses ``poll()`` and never
/// ``BodyStream/next()`` on such a stream. `StreamedBody` (in Handlers) is the one to use.
public protocol ProducedBodyStream: BodyStream {
    /// Called once, on the worker's event loop, when the response's head is queued: start the
    /// producer (on `executor`, the worker's loop, for tasks that should run there) and call
    /// `wake`, from any thread, each time a ``poll()`` that answered ``BodyPiece/notYet`` would
    /// now answer something else.
    func start(on executor: any TaskExecutor, wake: @escaping @Sendable () -> Void)
    /// The next piece. Called on the worker's event loop, never concurrently.
    func poll() -> BodyPiece
    /// The connection will not ask again (the client left, the request was HEAD, a drain ran
    /// out of time, or the stream was never started): stop the producer and free what it holds.
    func abandon()
}

extension ProducedBodyStream {
    /// Not used by herdd (it calls ``poll()``); for a caller that only knows ``BodyStream``:
    /// what is ready now, an empty piece if nothing is.
    public func next() -> [UInt8]? {
        switch poll() {
        case .bytes(let b): return b
        case .notYet: return []
        case .end, .failed: return nil
        }
    }
}

/// An open file that several responses may send at once (sendfile with its own offset does not
/// move the file's position): its owner closes `fd` once the last reference is gone.
public protocol SharedFile: AnyObject, Sendable {
    var fd: Int32 { get }
}

/// What a response carries after its head. Framing (Content-Length, chunked) is herdd's job.
public enum ResponseBody: Sendable {
    /// These bytes, with `Content-Length`.
    case bytes([UInt8])
    /// `count` bytes of `fd` starting at `offset`, sent with sendfile. The connection owns `fd`
    /// and must close it after sending - or call `discard()` if the body is not sent (HEAD, errors).
    case file(fd: Int32, offset: Int, count: Int)
    /// `count` bytes of a file its holder keeps open (an open-file cache), from `offset`, sent
    /// with sendfile. The connection keeps the reference until the bytes are out and never closes
    /// the fd: no dup and close per response, as `.file` would need.
    case sharedFile(any SharedFile, offset: Int, count: Int)
    /// Pieces from a ``BodyStream``: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
    case stream(any BodyStream)
}

/// What a handler returns: status, header fields and body.
///
/// herdd adds `Date`, `Server` (unless set), `Content-Length` or `Transfer-Encoding` and
/// `Connection`; framing fields a handler sets are ignored, and fields with characters that
/// would corrupt the head are dropped.
public struct HTTPResponse: Sendable {
    /// Status code (100...999; anything else is sent as 500).
    public var status: Int
    /// Header fields, in order.
    public var headers: HTTPHeaders
    /// The body (not sent for HEAD, 1xx, 204 and 304).
    public var body: ResponseBody

    /// A response; by default 200 with no fields and an empty body.
    public init(status: Int = 200, headers: HTTPHeaders = HTTPHeaders(), body: ResponseBody = .bytes([])) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A text response with `Content-Type: contentType`.
    public static func text(_ status: Int, _ s: String,
                            contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: .bytes(Array(s.utf8)))
    }

    /// The small plain-text error page used for protocol errors and by built-in handlers:
    /// body "<code> <reason>\n".
    public static func errorResponse(status: Int) -> HTTPResponse {
        text(status, "\(status) \(httpReasonPhrase(status))\n")
    }
}

/// Standard reason phrase for a status code (RFC 9110 and common extensions); "" if unknown.
public func httpReasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: return "Continue"
    case 101: return "Switching Protocols"
    case 102: return "Processing"
    case 103: return "Early Hints"
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 203: return "Non-Authoritative Information"
    case 204: return "No Content"
    case 205: return "Reset Content"
    case 206: return "Partial Content"
    case 207: return "Multi-Status"
    case 208: return "Already Reported"
    case 226: return "IM Used"
    case 300: return "Multiple Choices"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 303: return "See Other"
    case 304: return "Not Modified"
    case 305: return "Use Proxy"
    case 307: return "Temporary Redirect"
    case 308: return "Permanent Redirect"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 402: return "Payment Required"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 406: return "Not Acceptable"
    case 407: return "Proxy Authentication Required"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 410: return "Gone"
    case 411: return "Length Required"
    case 412: return "Precondition Failed"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 415: return "Unsupported Media Type"
    case 416: return "Range Not Satisfiable"
    case 417: return "Expectation Failed"
    case 418: return "I'm a teapot"
    case 421: return "Misdirected Request"
    case 422: return "Unprocessable Content"
    case 423: return "Locked"
    case 424: return "Failed Dependency"
    case 425: return "Too Early"
    case 426: return "Upgrade Required"
    case 428: return "Precondition Required"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 451: return "Unavailable For Legal Reasons"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 504: return "Gateway Timeout"
    case 505: return "HTTP Version Not Supported"
    case 506: return "Variant Also Negotiates"
    case 507: return "Insufficient Storage"
    case 508: return "Loop Detected"
    case 510: return "Not Extended"
    case 511: return "Network Authentication Required"
    default: return ""
    }
}
