import Glibc

/// Incremental HTTP/1.x request parser.
///
/// Contract: the caller keeps a byte buffer and calls `parse` with the unconsumed bytes (starting at
/// a request boundary) whenever new bytes arrive. On `.request` it drops `consumed` bytes and calls
/// again (pipelining). Between `.needMore` results the bytes already passed must stay in place (the
/// buffer only grows at the end): the parser remembers how far it scanned so a slowly arriving head
/// or chunked body is not re-scanned from the start. State resets after `.request` and `.error`.
/// After `.error` the connection should send the error response and close.
///
/// Decisions (beyond RFC 9112), as strict as llhttp where request smuggling lives:
/// - Leading empty lines are skipped (at most `maxRequestLine` bytes of them, else 400).
/// - Every line of the head, of the chunked framing and of the trailers ends in CRLF: a bare LF
///   (which RFC 9112 2.2 lets a recipient accept) is rejected (400), and so is a CR not
///   followed by LF. Two parsers that disagree about where a line ends disagree about framing.
/// - `Transfer-Encoding`: a list of tokens (no empty elements, no HTAB, no parameters, else 400);
///   chunked must be the final coding and appear once (else 400, RFC 9112 6.1); exactly
///   `chunked` is decoded, `gzip, chunked` and the like -> 501. In HTTP/1.0 -> 400.
/// - `Content-Length`: one field, one decimal value; `5, 5` and repeated fields -> 400.
/// - Chunk size: hex digits, then `;ext` or CRLF: no whitespace; extensions are
///   `;token[=token|quoted-string]`.
/// - Request-target: RFC 3986 characters only (no `"<>\^`{|}`, `#`, controls, bytes >= 0x80);
///   origin-form, absolute-form (authority must equal Host), `*` for OPTIONS only; CONNECT
///   -> 501 (herdd is no proxy). Decoded paths must be valid UTF-8 (else 400).
/// - Host (RFC 9112 3.2): exactly one on HTTP/1.1 (at most one on 1.0), a valid
///   `uri-host[:port]`, not empty on HTTP/1.1; else 400.
/// - A chunked body is decoded as it arrives: `releaseDecodedInput()` lets the caller drop the
///   framing bytes already decoded, so only the decoded body counts against `maxBodyBytes`.
public struct HTTPRequestParser: Sendable {
    public enum ParseResult: Sendable {
        case needMore
        case request(HTTPRequest, consumed: Int)
        case error(status: Int, reason: String)
    }

    public let limits: HTTPLimits

    /// Longest chunk-size line (size + extensions) accepted.
    static let maxChunkLine = 4096

    // MARK: state kept across `.needMore`

    private enum BodyFraming { case none, length(Int), chunked }

    /// A parsed head whose body has not fully arrived yet.
    private struct Head {
        var request: HTTPRequest
        var framing: BodyFraming
        var end: Int  // offset just past the head's blank line
    }

    private enum ChunkPhase { case size, data(remaining: Int), dataEnd, trailer }

    private var headStart = -1      // offset of the request line (after leading blank lines); -1 = not found yet
    private var scanPos = 0         // next offset to scan for a line ending
    private var lineCount = 0       // complete head lines seen (request line included)
    private var head: Head?
    /// The request `advance` reported complete, until `takeRequest()`.
    private var completed: HTTPRequest?
    private var chunkPhase = ChunkPhase.size
    private var chunkPos = 0        // next offset to decode in a chunked body
    private var chunkBody: [UInt8] = []
    private var trailerBytes = 0
    private var trailerCount = 0

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// The request whose head is complete while its body is still arriving (nil otherwise). The
    /// connection layer uses it to answer `Expect: 100-continue` before the body is sent.
    public var pendingHead: HTTPRequest? { head?.request }

    /// Forgets all progress (the next `parse` starts at a request boundary).
    public mutating func reset() {
        headStart = -1
        scanPos = 0
        lineCount = 0
        head = nil
        chunkPhase = .size
        chunkPos = 0
        chunkBody = []
        trailerBytes = 0
        trailerCount = 0
    }

    /// Convenience for tests.
    public mutating func parse(_ bytes: [UInt8]) -> ParseResult {
        bytes.withUnsafeBytes { parse($0) }
    }

    public mutating func parse(_ buf: UnsafeRawBufferPointer) -> ParseResult {
        switch advance(buf) {
        case .needMore: return .needMore
        case .error(let status, let reason): return .error(status: status, reason: reason)
        case .request(let consumed):
            guard let request = takeRequest() else { return .error(status: 500, reason: "parser lost its request") }
            return .request(request, consumed: consumed)
        }
    }

    /// What `advance` found.
    public enum Progress: Sendable, Equatable {
        case needMore
        /// A complete request of `consumed` bytes: take it with `takeRequest()`.
        case request(consumed: Int)
        case error(status: Int, reason: String)
    }

    /// The hot-path form of `parse`: the request is not carried in the result but taken with
    /// `takeRequest()` (moved out, not copied: an HTTPRequest holds several reference-counted
    /// strings and arrays, and an enum payload was copied and destroyed at every level).
    public mutating func advance(_ buf: UnsafeRawBufferPointer) -> Progress {
        // Defensive: a shorter buffer than what we already scanned means the caller restarted.
        if scanPos > buf.count || chunkPos > buf.count { reset() }
        let progress = step(buf)
        switch progress {
        case .needMore: break
        case .request, .error: reset()
        }
        return progress
    }

    /// The request `advance` just reported (once; nil afterwards).
    public mutating func takeRequest() -> HTTPRequest? {
        completed.take()
    }

    /// After `.needMore` in a chunked body: how many bytes at the start of the buffer were
    /// decoded (head and chunk framing included) and may now be dropped by the caller, which
    /// then passes the rest starting at offset 0. Offsets are rebased here. Without this a
    /// body sent as many small chunks would keep its framing (several times the body) in the
    /// buffer until the message ends.
    public mutating func releaseDecodedInput() -> Int {
        guard let h = head, case .chunked = h.framing, chunkPos > 0 else { return 0 }
        let released = chunkPos
        chunkPos = 0
        scanPos = 0
        headStart = 0
        head?.end = 0
        return released
    }

    /// A request has started (bytes of it were seen) and is not complete: true even when the
    /// caller released all its bytes (`releaseDecodedInput`).
    public var hasPartialRequest: Bool { head != nil || headStart >= 0 || scanPos > 0 }

    private mutating func step(_ buf: UnsafeRawBufferPointer) -> Progress {
        if head == nil {
            switch scanHead(buf) {
            case .needMore: return .needMore
            case .error(let s, let r): return .error(status: s, reason: r)
            case .complete(let end):
                switch parseHead(buf, start: headStart, end: end) {
                case .failure(let e): return .error(status: e.status, reason: e.reason)
                case .success(let h):
                    head = h
                    chunkPos = h.end
                }
            }
        }
        guard let framing = head?.framing, let end = head?.end else { return .needMore }
        switch framing {
        case .none:
            completed = head.take()?.request
            return .request(consumed: end)
        case .length(let n):
            guard buf.count - end >= n else { return .needMore }
            completed = head.take()?.request
            completed?.body = Array(UnsafeRawBufferPointer(rebasing: buf[end..<(end + n)]))
            return .request(consumed: end + n)
        case .chunked:
            return decodeChunked(buf)
        }
    }

    // MARK: head scanning

    private enum Scan { case needMore, complete(end: Int), error(Int, String) }

    /// Finds the end of the head incrementally, enforcing size limits even on incomplete input.
    private mutating func scanHead(_ buf: UnsafeRawBufferPointer) -> Scan {
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
            if headStart < 0 {
                if i > limits.maxRequestLine { return .error(400, "too many empty lines") }
                return .needMore
            }
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

    private struct Failure: Error { var status: Int; var reason: String }

    /// Calls `body` with each line of `buf[start..<end]` (terminators removed). Rejects bare CR.
    private static func forEachLine(_ buf: UnsafeRawBufferPointer, _ start: Int, _ end: Int,
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
    private struct FramingFields {
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

    private func parseHead(_ buf: UnsafeRawBufferPointer, start: Int, end: Int) -> Result<Head, Failure> {
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

    private enum PlainOriginForm { case noQuery, query(start: Int) }

    /// An origin-form target ("/p?q") whose path part has no '%' and no byte >= 0x80 needs no
    /// decoding: where its query starts (just past '?'), if it has one. nil for every other
    /// target (the general path decodes and checks it).
    @inline(__always)
    private static func plainOriginForm(_ t: UnsafeRawBufferPointer) -> PlainOriginForm? {
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

    private struct RequestLine { var method: String; var target: Range<Int>; var minor: Int }

    /// `method SP request-target SP HTTP-version`
    private static func parseRequestLine(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> Result<RequestLine, Failure> {
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

    // MARK: common names

    // Field names and methods that nearly every request carries, spelled as clients send them,
    // are taken from literals: no UTF-8 validation, no allocation, no reference counting (the
    // spelling is kept: the bytes must match exactly). Others are decoded as usual.

    @inline(__always)
    private static func same(_ p: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard let b = p.baseAddress, p.count == s.utf8CodeUnitCount else { return false }
        return memcmp(b, s.utf8Start, p.count) == 0
    }

    static func commonFieldName(_ p: UnsafeRawBufferPointer) -> String? {
        switch p.count {
        case 4:
            if same(p, "Host") { return "Host" }
            if same(p, "host") { return "host" }
        case 6:
            if same(p, "Accept") { return "Accept" }
            if same(p, "Cookie") { return "Cookie" }
            if same(p, "Origin") { return "Origin" }
            if same(p, "Expect") { return "Expect" }
            if same(p, "accept") { return "accept" }
        case 7:
            if same(p, "Referer") { return "Referer" }
        case 10:
            if same(p, "User-Agent") { return "User-Agent" }
            if same(p, "Connection") { return "Connection" }
            if same(p, "user-agent") { return "user-agent" }
            if same(p, "connection") { return "connection" }
        case 12:
            if same(p, "Content-Type") { return "Content-Type" }
            if same(p, "content-type") { return "content-type" }
        case 13:
            if same(p, "Cache-Control") { return "Cache-Control" }
            if same(p, "Authorization") { return "Authorization" }
            if same(p, "If-None-Match") { return "If-None-Match" }
        case 14:
            if same(p, "Content-Length") { return "Content-Length" }
            if same(p, "content-length") { return "content-length" }
        case 15:
            if same(p, "Accept-Encoding") { return "Accept-Encoding" }
            if same(p, "Accept-Language") { return "Accept-Language" }
            if same(p, "X-Forwarded-For") { return "X-Forwarded-For" }
            if same(p, "accept-encoding") { return "accept-encoding" }
        case 17:
            if same(p, "Transfer-Encoding") { return "Transfer-Encoding" }
            if same(p, "If-Modified-Since") { return "If-Modified-Since" }
        default:
            break
        }
        return nil
    }

    static func commonMethod(_ p: UnsafeRawBufferPointer) -> String? {
        switch p.count {
        case 3:
            if same(p, "GET") { return "GET" }
            if same(p, "PUT") { return "PUT" }
        case 4:
            if same(p, "HEAD") { return "HEAD" }
            if same(p, "POST") { return "POST" }
        case 5:
            if same(p, "PATCH") { return "PATCH" }
        case 6:
            if same(p, "DELETE") { return "DELETE" }
        case 7:
            if same(p, "OPTIONS") { return "OPTIONS" }
        default:
            break
        }
        return nil
    }

    // MARK: chunked body

    /// Decodes as much of a chunked body as is available, resuming at `chunkPos`.
    private mutating func decodeChunked(_ buf: UnsafeRawBufferPointer) -> Progress {
        let n = buf.count
        guard let base = buf.baseAddress, head != nil else { return .needMore }
        while true {
            switch chunkPhase {
            case .size:
                // chunk-size [ chunk-ext ] CRLF
                let avail = n - chunkPos
                guard avail > 0, let found = memchr(base + chunkPos, Int32(ASCII.lf), avail) else {
                    if avail > HTTPRequestParser.maxChunkLine { return .error(status: 400, reason: "chunk size line too long") }
                    return .needMore
                }
                let lf = UnsafeRawPointer(found) - base
                guard lf > chunkPos && buf[lf - 1] == ASCII.cr else { return .error(status: 400, reason: "bare LF in chunk size line") }
                let e = lf - 1
                if e - chunkPos > HTTPRequestParser.maxChunkLine { return .error(status: 400, reason: "chunk size line too long") }
                var i = chunkPos
                var size = 0
                while i < e, let d = ASCII.hexValue(buf[i]) {
                    // Saturate instead of overflowing: anything this big is over the limit anyway.
                    size = size > (Int.max - 15) / 16 ? Int.max : size * 16 + d
                    i += 1
                }
                guard i > chunkPos else { return .error(status: 400, reason: "invalid chunk size") }
                // No whitespace after the size: extensions follow at once, or the CRLF.
                if i < e && !StrictSyntax.isValidChunkExtensions(UnsafeRawBufferPointer(rebasing: buf[i..<e])) {
                    return .error(status: 400, reason: buf[i] == ASCII.semicolon ? "invalid chunk extension" : "invalid chunk size")
                }
                // Only decoded bytes count against the limit.
                if size > limits.maxBodyBytes - chunkBody.count { return .error(status: 413, reason: "body too large") }
                chunkPos = lf + 1
                chunkPhase = size == 0 ? .trailer : .data(remaining: size)
            case .data(let remaining):
                let take = min(remaining, n - chunkPos)
                if take > 0 {
                    chunkBody.appendBytes(UnsafeRawBufferPointer(rebasing: buf[chunkPos..<(chunkPos + take)]))
                    chunkPos += take
                }
                if take < remaining {
                    chunkPhase = .data(remaining: remaining - take)
                    return .needMore
                }
                chunkPhase = .dataEnd
            case .dataEnd:
                // Exactly CRLF after the data (a bare LF is the class of Go's CVE-2025-22871).
                guard chunkPos < n else { return .needMore }
                guard buf[chunkPos] == ASCII.cr else { return .error(status: 400, reason: "missing CRLF after chunk data") }
                guard chunkPos + 1 < n else { return .needMore }
                guard buf[chunkPos + 1] == ASCII.lf else { return .error(status: 400, reason: "missing CRLF after chunk data") }
                chunkPos += 2
                chunkPhase = .size
            case .trailer:
                // *( field-line CRLF ) CRLF -- parsed for syntax, then discarded.
                let avail = n - chunkPos
                guard avail > 0, let found = memchr(base + chunkPos, Int32(ASCII.lf), avail) else {
                    if trailerBytes + avail > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                    return .needMore
                }
                let lf = UnsafeRawPointer(found) - base
                guard lf > chunkPos && buf[lf - 1] == ASCII.cr else { return .error(status: 400, reason: "bare LF in trailer section") }
                let e = lf - 1
                trailerBytes += lf + 1 - chunkPos
                if trailerBytes > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                if e == chunkPos {
                    // End of message.
                    completed = head.take()?.request
                    completed?.body = chunkBody
                    return .request(consumed: lf + 1)
                }
                if let err = HTTPRequestParser.checkTrailer(buf, chunkPos..<e) { return err }
                trailerCount += 1
                if trailerCount > limits.maxHeaderCount { return .error(status: 431, reason: "too many trailer fields") }
                chunkPos = lf + 1
            }
        }
    }

    /// Minimal syntax check of a trailer field line: `token ":" value` without controls.
    private static func checkTrailer(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> Progress? {
        var i = r.lowerBound
        while i < r.upperBound && buf[i] != ASCII.colon {
            guard ASCII.isTchar(buf[i]) else { return .error(status: 400, reason: "invalid trailer field") }
            i += 1
        }
        guard i > r.lowerBound, i < r.upperBound else { return .error(status: 400, reason: "invalid trailer field") }
        // Framing fields have no place in trailers (RFC 9110 6.5.1); llhttp refuses them too.
        let name = UnsafeRawBufferPointer(rebasing: buf[r.lowerBound..<i])
        if ASCII.equalsLowercase(name, "content-length") || ASCII.equalsLowercase(name, "transfer-encoding") {
            return .error(status: 400, reason: "framing field in trailers")
        }
        for k in i..<r.upperBound {
            let c = buf[k]
            if (c < 0x20 && c != ASCII.ht) || c == 0x7F { return .error(status: 400, reason: "invalid trailer field") }
        }
        return nil
    }
}
