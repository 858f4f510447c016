/// How the connection must send the body after the head written by `HTTPResponseHead.serialize`.
public enum BodyFraming: Sendable, Equatable {
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
public enum HTTPResponseHead {
    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// Appends the status line, headers and blank line for `response` to `out`.
    ///
    /// - `keepAlive`: whether the connection will stay open; it is forced to false for a
    ///   close-delimited body (the caller must close after `.closeDelimited`).
    /// - `versionMinor`: the request's HTTP minor version (decides chunked vs close-delimited and
    ///   whether `Connection: keep-alive` must be spelled out).
    /// - Returns the framing the caller must use for the body.
    public static func serialize(_ response: HTTPResponse, requestIsHEAD: Bool, keepAlive: Bool,
                                 versionMinor: Int, date: String, into out: inout [UInt8]) -> BodyFraming {
        // Out-of-range status codes from a handler become 500 rather than a malformed status line.
        let status = (100...999).contains(response.status) ? response.status : 500
        if let line = commonStatusLines[status] {
            out.append(contentsOf: line)
        } else {
            out.append(contentsOf: "HTTP/1.1 \(status) \(httpReasonPhrase(status))\r\n".utf8)
        }

        let headers = response.headers
        if !headers.contains("Server") { out.append(contentsOf: "Server: herdd\r\n".utf8) }
        if !headers.contains("Date") { appendField("Date", date, &out) }
        for (name, value) in headers {
            if ASCII.caseInsensitiveEquals(name, "Content-Length")
                || ASCII.caseInsensitiveEquals(name, "Transfer-Encoding")
                || ASCII.caseInsensitiveEquals(name, "Connection") { continue }
            // Drop fields that would corrupt the head (response splitting).
            guard ASCII.isToken(name), isSafeValue(value) else { continue }
            appendField(name, value, &out)
        }

        var keep = keepAlive
        let framing: BodyFraming
        if status < 200 || status == 204 || status == 304 {
            framing = .none
        } else {
            switch response.body {
            case .bytes(let b):
                appendContentLength(b.count, &out)
                framing = requestIsHEAD ? .none : .contentLength(b.count)
            case .file(_, _, let count):
                let c = max(0, count)
                appendContentLength(c, &out)
                framing = requestIsHEAD ? .none : .contentLength(c)
            case .stream:
                if versionMinor >= 1 {
                    // Also sent for HEAD, mirroring what GET would get (RFC 9110 9.3.2).
                    out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
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
            out.append(contentsOf: "Connection: close\r\n".utf8)
        } else if versionMinor == 0 {
            out.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        out.append(contentsOf: "\r\n".utf8)
        return framing
    }

    /// Appends one chunk (`hex-size CRLF data CRLF`). Empty input appends nothing (an empty chunk
    /// would end the body).
    public static func chunk(_ bytes: [UInt8], into out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        out.append(contentsOf: String(bytes.count, radix: 16).utf8)
        out.append(contentsOf: "\r\n".utf8)
        out.append(contentsOf: bytes)
        out.append(contentsOf: "\r\n".utf8)
    }

    /// Status lines of the usual statuses, built once (the hot path appends bytes only).
    private static let commonStatusLines: [Int: [UInt8]] = {
        var t: [Int: [UInt8]] = [:]
        for s in [200, 201, 204, 206, 301, 302, 304, 400, 403, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505] {
            t[s] = Array("HTTP/1.1 \(s) \(httpReasonPhrase(s))\r\n".utf8)
        }
        return t
    }()

    private static let contentLengthPrefix = Array("Content-Length: ".utf8)

    /// "Content-Length: <n>\r\n" without building a String for the number.
    private static func appendContentLength(_ n: Int, _ out: inout [UInt8]) {
        out.append(contentsOf: contentLengthPrefix)
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
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
        out.append(13)
        out.append(10)
    }

    private static func appendField(_ name: String, _ value: String, _ out: inout [UInt8]) {
        out.append(contentsOf: name.utf8)
        out.append(contentsOf: ": ".utf8)
        out.append(contentsOf: value.utf8)
        out.append(contentsOf: "\r\n".utf8)
    }

    private static func isSafeValue(_ v: String) -> Bool {
        for c in v.utf8 where (c < 0x20 && c != ASCII.ht) || c == 0x7F { return false }
        return true
    }
}
