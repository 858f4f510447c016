import HerdLibc

// HTTPRequestParser: finding the end of the head, then judging the request line and every field
// (framing, Host, request-target). Decisions: the doc comment of HTTPRequestParser.
extension HTTPRequestParser {
    // MARK: head scanning

    enum Scan { case needMore, complete(end: Int), error(Int, String) }

    /// Finds the end of the head incrementally, enforcing size limits even on incomplete input.
    mutating func scanHead(_ buf: UnsafeRawBufferPointer) -> Scan {
        let n = buf.count
        guard let base = buf.baseAddress else { return .needMore }
        if headStart < 0 {
            // Skip leading empty lines (RFC 9112 2.2).
            var i = scanPos
            while i < n {
                let c = buf[i]
                if c == ASCII.lf { i += 1; continue }
                if c == ASCII.cr {
                    if i + 1 >= n { break }  // wait for the LF
                    if buf[i + 1] == ASCII.lf { i += 2; continue }
                    return .error(400, "bare CR")
                }
                headStart = i
                break
            }
            scanPos = i
            // The limit applies also when the request line came in the same read as the empty
            // lines before it (i is then its offset), not only while nothing else has arrived
            // (found by Tests/fuzz: 400 in pieces, accepted in one buffer).
            if i > limits.maxRequestLine { return .error(400, "too many empty lines") }
            if headStart < 0 { return .needMore }
        }
        while true {
            let remaining = n - scanPos
            guard remaining > 0, let found = memchr(base + scanPos, Int32(ASCII.lf), remaining) else {
                // Incomplete line: enforce limits now so a client cannot make us buffer forever.
                // (+1: the line's CR may already be here while its LF is not.)
                if lineCount == 0 && n - headStart > limits.maxRequestLine + 1 {
                    return .error(414, "request line too long")
                }
                if n - headStart > limits.maxHeaderBytes { return .error(431, "request head too large") }
                return .needMore
            }
            let lf = UnsafeRawPointer(found) - base
            // The size limits first, judged as if the bytes before this LF had arrived without it
            // (the branch above): the verdict must not depend on where the input was cut
            // (found by Tests/fuzz, target FuzzHTTPParser: 414 in pieces, 400 in one buffer).
            if lineCount == 0 && lf - headStart > limits.maxRequestLine + 1 { return .error(414, "request line too long") }
            if lf - headStart > limits.maxHeaderBytes { return .error(431, "request head too large") }
            // Bare LF: refused (see the type's comment). (lf > scanPos: the CR is this line's.)
            guard lf > scanPos && buf[lf - 1] == ASCII.cr else { return .error(400, "bare LF in request head") }
            let lineEnd = lf - 1
            let lineLen = lineEnd - scanPos
            if lineCount == 0 && lineLen > limits.maxRequestLine { return .error(414, "request line too long") }
            if lf + 1 - headStart > limits.maxHeaderBytes { return .error(431, "request head too large") }
            scanPos = lf + 1
            if lineLen == 0 { return .complete(end: scanPos) }  // blank line (never the first: skipped above)
            lineCount += 1
            if lineCount - 1 > limits.maxHeaderCount { return .error(431, "too many header fields") }
        }
    }

    // MARK: head parsing

    struct Failure: Error { var status: Int; var reason: String }

    /// Calls `body` with each line of `buf[start..<end]` (terminators removed). Rejects bare CR.
    static func forEachLine(_ buf: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
                                    _ body: (Range<Int>) -> Failure?) -> Failure? {
        var i = start
        var lineStart = start
        while i < end {
            let c = buf[i]
            if c == ASCII.lf {
                var e = i
                if e > lineStart && buf[e - 1] == ASCII.cr { e -= 1 }
                if let f = body(lineStart..<e) { return f }
                lineStart = i + 1
            } else if c == ASCII.cr {
                if i + 1 >= end || buf[i + 1] != ASCII.lf { return Failure(status: 400, reason: "bare CR") }
            }
            i += 1
        }
        return nil
    }

    /// What the head says about framing and Host, gathered while its fields are parsed (by
    /// comparing name bytes, without building or searching strings), judged afterwards in the
    /// order RFC 9112 gives.
    struct FramingFields {
        var hostCount = 0
        var hostValue = 0..<0      // the (last) Host field value's bytes in the buffer
        var hostInvalid = false
        var teSeen = false
        var te = StrictSyntax.TransferCodings()
        var clSeen = false
        var clLength: Int? = nil
        var clInvalid = false
        var clRepeated = false

        mutating func noteHost(_ v: UnsafeRawBufferPointer, at range: Range<Int>) {
            hostCount += 1
            hostValue = range
            if !StrictSyntax.isValidHostPort(v) { hostInvalid = true }
        }

        /// One decimal value per message: a list ("5, 5") or a second field, even an equal one,
        /// is refused (RFC 9110 8.6 lets a recipient accept them; llhttp and nginx do not, and a
        /// proxy in front may frame them differently).
        mutating func noteContentLength(_ v: UnsafeRawBufferPointer) {
            if clSeen { clRepeated = true }
            clSeen = true
            if let value = HTTPRequestParser.parseDecimal(v) { clLength = value } else { clInvalid = true }
        }

        mutating func noteTransferEncoding(_ v: UnsafeRawBufferPointer) {
            teSeen = true
            te.note(v)
        }
    }

    func parseHead(_ buf: UnsafeRawBufferPointer, start: Int, end: Int) -> Result<Head, Failure> {
        var isFirst = true
        var method = "", versionMinor = 1
        var targetRange = 0..<0
        var headers = HTTPHeaders()
        // lineCount (from scanHead) counts the request line too.
        headers.reserveCapacity(max(0, lineCount - 1))
        var framingFields = FramingFields()
        var connectionOptions = HTTPRequest.ConnectionOptions()
        let failure = HTTPRequestParser.forEachLine(buf, start, end) { r in
            if r.isEmpty { return nil }  // the terminating blank line
            if isFirst {
                isFirst = false
                switch HTTPRequestParser.parseRequestLine(buf, r) {
                case .failure(let f): return f
                case .success(let rl):
                    method = rl.method
                    targetRange = rl.target
                    versionMinor = rl.minor
                    return nil
                }
            }
            // obs-fold (or whitespace before the first header): reject.
            if buf[r.lowerBound] == ASCII.sp || buf[r.lowerBound] == ASCII.ht {
                return Failure(status: 400, reason: "obsolete line folding")
            }
            var colon = r.lowerBound
            while colon < r.upperBound && buf[colon] != ASCII.colon {
                guard ASCII.isTchar(buf[colon]) else { return Failure(status: 400, reason: "invalid header name") }
                colon += 1
            }
            if colon == r.upperBound || colon == r.lowerBound {
                return Failure(status: 400, reason: "invalid header line")
            }
            var vs = colon + 1, ve = r.upperBound
            while vs < ve && ASCII.isOWS(buf[vs]) { vs += 1 }
            while ve > vs && ASCII.isOWS(buf[ve - 1]) { ve -= 1 }
            let name = UnsafeRawBufferPointer(rebasing: buf[r.lowerBound..<colon])
            let value = UnsafeRawBufferPointer(rebasing: buf[vs..<ve])
            // Host's bytes are checked once, by the stricter uri-host[:port] syntax (noteHost).
            let isHost = name.count == 4 && ASCII.equalsLowercase(name, "host")
            if !isHost {
                for k in vs..<ve where ASCII.isUnsafeInValue(buf[k]) {
                    return Failure(status: 400, reason: "invalid character in header value")
                }
            }
            if headers.count >= limits.maxHeaderCount {
                return Failure(status: 431, reason: "too many header fields")
            }
            switch name.count {  // the length first: most fields are none of these
            case 4 where isHost:
                framingFields.noteHost(value, at: vs..<ve)
            case 10 where ASCII.equalsLowercase(name, "connection"):
                connectionOptions.note(value)
            case 14 where ASCII.equalsLowercase(name, "content-length"):
                framingFields.noteContentLength(value)
            case 17 where ASCII.equalsLowercase(name, "transfer-encoding"):
                // HTAB inside the value (leading OWS aside): "chunked\t" is chunked to some
                // parsers and an unknown coding to others.
                for k in vs..<r.upperBound where buf[k] == ASCII.ht {
                    return Failure(status: 400, reason: "HTAB in Transfer-Encoding")
                }
                framingFields.noteTransferEncoding(value)
            default:
                break
            }
            headers.add(HTTPRequestParser.commonFieldName(name) ?? String(decoding: name, as: UTF8.self),
                        String(decoding: value, as: UTF8.self))
            return nil
        }
        if let failure { return .failure(failure) }

        // Host (RFC 9112 3.2).
        if framingFields.hostCount > 1 { return .failure(Failure(status: 400, reason: "multiple Host headers")) }
        if versionMinor >= 1 && framingFields.hostCount == 0 {
            return .failure(Failure(status: 400, reason: "missing Host header"))
        }
        if framingFields.hostInvalid || (versionMinor >= 1 && framingFields.hostValue.isEmpty) {
            return .failure(Failure(status: 400, reason: "invalid Host header"))
        }
        // herdd is an origin server, no proxy: no tunnels (RFC 9110 9.3.6, 15.6.2).
        if method == "CONNECT" { return .failure(Failure(status: 501, reason: "CONNECT not supported")) }

        // Target -> path and query.
        let rawTarget = UnsafeRawBufferPointer(rebasing: buf[targetRange])
        let target = String(decoding: rawTarget, as: UTF8.self)
        let path: String
        let query: String?
        if let fast = HTTPRequestParser.plainOriginForm(rawTarget) {
            // origin-form without '%' or non-ASCII bytes (nearly every request): the path is
            // the bytes before '?' as they are; without a query it is the target itself.
            if case .query(let q) = fast {
                path = String(decoding: UnsafeRawBufferPointer(rebasing: rawTarget[..<(q - 1)]), as: UTF8.self)
                query = String(decoding: UnsafeRawBufferPointer(rebasing: rawTarget[q...]), as: UTF8.self)
            } else {
                path = target
                query = nil
            }
        } else {
            let bytes = Array(rawTarget)
            let split = HTTPRequest.splitTarget(bytes)
            if bytes == [UInt8(ascii: "*")] {
                // asterisk-form: OPTIONS only (RFC 9112 3.2.4).
                guard method == "OPTIONS" else { return .failure(Failure(status: 400, reason: "asterisk-form target without OPTIONS")) }
            } else if bytes.first != ASCII.slash {
                // absolute-form: a valid authority that is the Host field's value (RFC 9112 3.2.2:
                // a client MUST send them identical; a proxy in front may route by either).
                guard let authority = StrictSyntax.absoluteFormAuthority(rawTarget), !authority.isEmpty,
                      StrictSyntax.isValidHostPort(UnsafeRawBufferPointer(rebasing: rawTarget[authority])) else {
                    return .failure(Failure(status: 400, reason: "invalid request target"))
                }
                if framingFields.hostCount == 1, !StrictSyntax.equalsIgnoringCase(
                    UnsafeRawBufferPointer(rebasing: rawTarget[authority]),
                    UnsafeRawBufferPointer(rebasing: buf[framingFields.hostValue])) {
                    return .failure(Failure(status: 400, reason: "absolute-form authority differs from Host"))
                }
            }
            if bytes.first == ASCII.slash || bytes == [UInt8(ascii: "*")] || split.path.first == ASCII.slash {
                guard let decoded = percentDecode(split.path) else {
                    return .failure(Failure(status: 400, reason: "invalid percent-encoding in path"))
                }
                guard let s = strictUTF8(decoded) else {
                    return .failure(Failure(status: 400, reason: "path is not valid UTF-8"))
                }
                path = s
            } else if method == "CONNECT" {
                path = target  // authority-form
            } else {
                return .failure(Failure(status: 400, reason: "invalid request target"))
            }
            query = split.query.map { String(decoding: $0, as: UTF8.self) }
        }

        // Body framing (RFC 9112 6).
        var framing = BodyFraming.none
        if framingFields.teSeen {
            if framingFields.clSeen {
                return .failure(Failure(status: 400, reason: "both Transfer-Encoding and Content-Length"))
            }
            if versionMinor == 0 {
                return .failure(Failure(status: 400, reason: "Transfer-Encoding in HTTP/1.0 request"))
            }
            let te = framingFields.te
            if te.malformed || te.codings == 0 { return .failure(Failure(status: 400, reason: "invalid Transfer-Encoding")) }
            // chunked not final (or twice): the length cannot be determined (RFC 9112 6.1, 6.3).
            if te.chunkedNotLast || !te.lastIsChunked {
                return .failure(Failure(status: 400, reason: "chunked is not the final transfer coding"))
            }
            // A coding before chunked that we do not implement (RFC 9112 6.1: SHOULD 501).
            guard te.codings == 1 else { return .failure(Failure(status: 501, reason: "unsupported Transfer-Encoding")) }
            framing = .chunked
        } else if framingFields.clSeen {
            if framingFields.clInvalid { return .failure(Failure(status: 400, reason: "invalid Content-Length")) }
            if framingFields.clRepeated { return .failure(Failure(status: 400, reason: "repeated Content-Length")) }
            guard let length = framingFields.clLength else { return .failure(Failure(status: 400, reason: "invalid Content-Length")) }
            if length > limits.maxBodyBytes { return .failure(Failure(status: 413, reason: "body too large")) }
            if length > 0 { framing = .length(length) }
        }

        var req = HTTPRequest(method: method, target: target, path: path, query: query,
                              versionMinor: versionMinor, headers: headers, body: [])
        req.connectionOptions = connectionOptions
        return .success(Head(request: req, framing: framing, end: end))
    }

    enum PlainOriginForm { case noQuery, query(start: Int) }

    /// An origin-form target ("/p?q") whose path part has no '%' and no byte >= 0x80 needs no
    /// decoding: where its query starts (just past '?'), if it has one. nil for every other
    /// target (the general path decodes and checks it).
    @inline(__always)
    static func plainOriginForm(_ t: UnsafeRawBufferPointer) -> PlainOriginForm? {
        guard let first = t.first, first == ASCII.slash else { return nil }
        for i in 0..<t.count {
            let c = t[i]
            if c == ASCII.question { return .query(start: i + 1) }
            if c == ASCII.percent || c >= 0x80 { return nil }
        }
        return .noQuery
    }

    /// Non-negative decimal without sign; nil if empty, non-digit or overflowing.
    static func parseDecimal(_ s: UnsafeRawBufferPointer) -> Int? {
        guard !s.isEmpty else { return nil }
        var v = 0
        for c in s {
            guard c >= 48 && c <= 57 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - 48))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    struct RequestLine { var method: String; var target: Range<Int>; var minor: Int }

    /// `method SP request-target SP HTTP-version`
    static func parseRequestLine(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> Result<RequestLine, Failure> {
        let bad = Failure(status: 400, reason: "malformed request line")
        var i = r.lowerBound
        while i < r.upperBound && buf[i] != ASCII.sp {
            guard ASCII.isTchar(buf[i]) else { return .failure(bad) }
            i += 1
        }
        let methodEnd = i
        guard methodEnd > r.lowerBound, i < r.upperBound else { return .failure(bad) }
        i += 1
        let targetStart = i
        while i < r.upperBound && buf[i] != ASCII.sp {
            // RFC 3986 characters only (table-driven): no controls, DEL, `"<>\^`{|}`, '#',
            // bytes >= 0x80.
            guard ASCII.isTargetChar(buf[i]) else { return .failure(bad) }
            i += 1
        }
        let targetEnd = i
        guard targetEnd > targetStart, i < r.upperBound else { return .failure(bad) }
        i += 1
        // HTTP-version = "HTTP/" DIGIT "." DIGIT  (case-sensitive)
        let v = UnsafeRawBufferPointer(rebasing: buf[i..<r.upperBound])
        guard v.count >= 6, v[0] == UInt8(ascii: "H"), v[1] == UInt8(ascii: "T"), v[2] == UInt8(ascii: "T"),
              v[3] == UInt8(ascii: "P"), v[4] == ASCII.slash else { return .failure(bad) }
        let isDigit = { (c: UInt8) in c >= 48 && c <= 57 }
        let major = v[5]
        guard isDigit(major) else { return .failure(bad) }
        let minor: Int
        if v.count == 6 {
            // "HTTP/2", "HTTP/3": a real version we do not speak; "HTTP/1" is malformed.
            guard major != UInt8(ascii: "1") else { return .failure(bad) }
            minor = 0
        } else {
            guard v.count == 8, v[6] == UInt8(ascii: "."), isDigit(v[7]) else { return .failure(bad) }
            minor = Int(v[7] - 48)
        }
        guard major == UInt8(ascii: "1") else {
            return .failure(Failure(status: 505, reason: "HTTP version not supported"))
        }
        let methodBytes = UnsafeRawBufferPointer(rebasing: buf[r.lowerBound..<methodEnd])
        let method = commonMethod(methodBytes) ?? String(decoding: methodBytes, as: UTF8.self)
        return .success(RequestLine(method: method, target: targetStart..<targetEnd, minor: min(minor, 1)))
    }
}
