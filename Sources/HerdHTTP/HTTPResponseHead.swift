/// How the connection must send the body after the head written by `HTTPResponseHead.serialize`.
package enum BodyFraming: Sendable, Equatable {
    /// No body bytes at all (HEAD, 1xx, 204, 304). A `.file` body must still be `discard()`ed.
    case none
    /// Exactly this many bytes (from `.bytes` or `.file`).
    case contentLength(Int)
    /// `.stream` to an HTTP/1.1 client: use `chunk(_:into:)` per piece, then `lastChunk`.
    case chunked
    /// `.stream` to an HTTP/1.0 client: send raw pieces, then close the connection.
    case closeDelimited
}

/// Serialises response heads. The serializer owns message framing: handler-set
/// `Content-Length`, `Transfer-Encoding` and `Connection` headers are ignored.
package enum HTTPResponseHead {
    package static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// Appends the status line, headers and blank line for `response` to `out`.
    ///
    /// - `keepAlive`: whether the connection will stay open; it is forced to false for a
    ///   close-delimited body (the caller must close after `.closeDelimited`).
    /// - `versionMinor`: the request's HTTP minor version (decides chunked vs close-delimited and
    ///   whether `Connection: keep-alive` must be spelled out).
    /// - Returns the framing the caller must use for the body.
    package static func serialize(_ response: HTTPResponse, requestIsHEAD: Bool, keepAlive: Bool,
                                 versionMinor: Int, date: String, into out: inout [UInt8]) -> BodyFraming {
        // Out-of-range status codes from a handler become 500 rather than a malformed status line.
        let status = (100...999).contains(response.status) ? response.status : 500
        if let line = commonStatusLine(status) {
            appendLiteral(line, &out)
        } else {
            out.append(contentsOf: "HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n".utf8)
        }

        // Handler fields, except the framing ones the serializer owns and any that would
        // corrupt the head (response splitting). Server and Date unless the handler set them.
        // Fields prepared once (`HTTPHeaders.prepareForResponses`) are copied as they were
        // serialized then.
        let prepared = response.headers.prepared
        let (hasServer, hasDate) = prepared.map { ($0.hasServer, $0.hasDate) } ?? namesServerOrDate(response.headers)
        if !hasServer { appendLiteral("Server: herdd\r\n", &out) }
        if !hasDate { appendField("Date", date, &out) }
        if let prepared { out.append(contentsOf: prepared.bytes) } else { appendHandlerFields(response.headers, into: &out) }

        var keep = keepAlive
        let framing: BodyFraming
        if status < 200 || status == 204 || status == 304 {
            framing = .none
        } else {
            switch response.body {
            case .bytes(let b):
                appendContentLength(b.count, &out)
                framing = requestIsHEAD ? .none : .contentLength(b.count)
            case .file(_, _, let count), .sharedFile(_, _, let count):
                let c = max(0, count)
                appendContentLength(c, &out)
                framing = requestIsHEAD ? .none : .contentLength(c)
            case .stream:
                if versionMinor >= 1 {
                    // Also sent for HEAD, mirroring what GET would get (RFC 9110 9.3.2).
                    appendLiteral("Transfer-Encoding: chunked\r\n", &out)
                    framing = requestIsHEAD ? .none : .chunked
                } else if requestIsHEAD {
                    framing = .none
                } else {
                    keep = false
                    framing = .closeDelimited
                }
            }
        }

        if !keep {
            appendLiteral("Connection: close\r\n", &out)
        } else if versionMinor == 0 {
            appendLiteral("Connection: keep-alive\r\n", &out)
        }
        out.append(13)
        out.append(10)
        return framing
    }

    /// Appends one chunk (`hex-size CRLF data CRLF`). Empty input appends nothing (an empty chunk
    /// would end the body).
    package static func chunk(_ bytes: [UInt8], into out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        out.append(contentsOf: String(bytes.count, radix: 16).utf8)
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: bytes)
        out.append(contentsOf: "\r\n".utf8)
    }

    /// Whether `headers` name Server or Date. Names are compared by length first: most fields
    /// are neither.
    static func namesServerOrDate(_ headers: HTTPHeaders) -> (server: Bool, date: Bool) {
        var hasServer = false, hasDate = false
        headers.forEachField { name, _ in
            switch name.utf8.count {
            case 4 where ASCII.equalsLowercase(name, "date"): hasDate = true
            case 6 where ASCII.equalsLowercase(name, "server"): hasServer = true
            default: break
            }
        }
        return (hasServer, hasDate)
    }

    /// Appends the handler's fields but the framing ones the serializer owns (Connection,
    /// Content-Length, Transfer-Encoding) and any that would corrupt the head (a name that is
    /// not a token, a value with CR, LF or NUL: response splitting).
    static func appendHandlerFields(_ headers: HTTPHeaders, into out: inout [UInt8]) {
        headers.forEachField { name, value in
            switch name.utf8.count {
            case 10 where ASCII.equalsLowercase(name, "connection"): return
            case 14 where ASCII.equalsLowercase(name, "content-length"): return
            case 17 where ASCII.equalsLowercase(name, "transfer-encoding"): return
            default: break
            }
            guard ASCII.isToken(name), ASCII.isSafeValue(value) else { return }
            appendField(name, value, &out)
        }
    }

    /// Status lines of the usual statuses as literals (a switch, no table to initialise or hash).
    static func commonStatusLine(_ status: Int) -> StaticString? {
        switch status {
        case 200: return "HTTP/1.1 200 OK\r\n"
        case 201: return "HTTP/1.1 201 Created\r\n"
        case 204: return "HTTP/1.1 204 No Content\r\n"
        case 206: return "HTTP/1.1 206 Partial Content\r\n"
        case 301: return "HTTP/1.1 301 Moved Permanently\r\n"
        case 302: return "HTTP/1.1 302 Found\r\n"
        case 304: return "HTTP/1.1 304 Not Modified\r\n"
        case 400: return "HTTP/1.1 400 Bad Request\r\n"
        case 403: return "HTTP/1.1 403 Forbidden\r\n"
        case 404: return "HTTP/1.1 404 Not Found\r\n"
        case 405: return "HTTP/1.1 405 Method Not Allowed\r\n"
        case 500: return "HTTP/1.1 500 Internal Server Error\r\n"
        case 503: return "HTTP/1.1 503 Service Unavailable\r\n"
        default: return nil
        }
    }

    /// "Content-Length: <n>\r\n" without building a String for the number.
    private static func appendContentLength(_ n: Int, _ out: inout [UInt8]) {
        appendLiteral("Content-Length: ", &out)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = max(0, n)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[19 - count] = UInt8(48 + v % 10)
                v /= 10
                count += 1
            } while v > 0 && count < 20
            out.appendBytes(UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
        out.append(13)
        out.append(10)
    }

    /// Appends a literal's bytes (no String, no per-character iteration).
    @inline(__always)
    private static func appendLiteral(_ s: StaticString, _ out: inout [UInt8]) {
        out.appendBytes(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inline(__always)
    private static func appendString(_ s: String, _ out: inout [UInt8]) {
        ASCII.withBytes(s) { out.appendBytes($0) }
    }

    private static func appendField(_ name: String, _ value: String, _ out: inout [UInt8]) {
        appendString(name, &out)
        out.append(UInt8(ascii: ":"))
        out.append(ASCII.sp)
        appendString(value, &out)
        out.append(13)
        out.append(10)
    }
}
