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
/// Decisions (beyond RFC 9112):
/// - Leading empty lines are skipped (at most `maxRequestLine` bytes of them, else 400).
/// - Bare LF is accepted as a line ending; a CR not followed by LF is rejected (400).
/// - `Transfer-Encoding` must be exactly `chunked`; any other coding list (even `gzip, chunked`)
///   -> 501. Transfer-Encoding in an HTTP/1.0 request -> 400 (RFC 9112 6.1: faulty framing).
/// - Decoded paths must be valid UTF-8 (else 400).
/// - More than one Host header -> 400 (RFC 9112 3.2).
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
            var lineEnd = lf
            if lineEnd > scanPos && buf[lineEnd - 1] == ASCII.cr { lineEnd -= 1 }
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
        var teSeen = false
        var teCodings = 0          // list elements over all Transfer-Encoding fields
        var teFirstIsChunked = false
        var clSeen = false
        var clLength: Int? = nil
        var clInvalid = false
        var clConflict = false

        mutating func noteContentLength(_ v: UnsafeRawBufferPointer) {
            clSeen = true
            // A field may repeat the value as a list ("5, 5"); all must agree. Empty elements
            // are invalid here (unlike other lists).
            ASCII.forEachListElement(v, keepingEmpty: true) { element in
                guard let value = HTTPRequestParser.parseDecimal(element) else {
                    clInvalid = true
                    return false
                }
                if let l = clLength, l != value { clConflict = true }
                clLength = value
                return true
            }
        }

        mutating func noteTransferEncoding(_ v: UnsafeRawBufferPointer) {
            teSeen = true
            ASCII.forEachListElement(v) { coding in
                if teCodings == 0 { teFirstIsChunked = ASCII.equalsLowercase(coding, "chunked") }
                teCodings += 1
                return true
            }
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
            for k in vs..<ve where ASCII.isUnsafeInValue(buf[k]) {
                return Failure(status: 400, reason: "invalid character in header value")
            }
            if headers.count >= limits.maxHeaderCount {
                return Failure(status: 431, reason: "too many header fields")
            }
            let name = UnsafeRawBufferPointer(rebasing: buf[r.lowerBound..<colon])
            let value = UnsafeRawBufferPointer(rebasing: buf[vs..<ve])
            switch name.count {  // the length first: most fields are none of these
            case 4 where ASCII.equalsLowercase(name, "host"):
                framingFields.hostCount += 1
            case 10 where ASCII.equalsLowercase(name, "connection"):
                connectionOptions.note(value)
            case 14 where ASCII.equalsLowercase(name, "content-length"):
                framingFields.noteContentLength(value)
            case 17 where ASCII.equalsLowercase(name, "transfer-encoding"):
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
            if framingFields.teCodings == 0 { return .failure(Failure(status: 400, reason: "empty Transfer-Encoding")) }
            guard framingFields.teCodings == 1, framingFields.teFirstIsChunked else {
                return .failure(Failure(status: 501, reason: "unsupported Transfer-Encoding"))
            }
            framing = .chunked
        } else if framingFields.clSeen {
            if framingFields.clInvalid { return .failure(Failure(status: 400, reason: "invalid Content-Length")) }
            if framingFields.clConflict { return .failure(Failure(status: 400, reason: "conflicting Content-Length")) }
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
            let c = buf[i]
            // No controls, no DEL. (Raw bytes >= 0x80 are tolerated; the decoded path must be UTF-8.)
            guard c > 0x20 && c != 0x7F else { return .failure(bad) }
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
                var e = lf
                if e > chunkPos && buf[e - 1] == ASCII.cr { e -= 1 }
                if e - chunkPos > HTTPRequestParser.maxChunkLine { return .error(status: 400, reason: "chunk size line too long") }
                var i = chunkPos
                var size = 0
                var digits = 0
                while i < e, let d = ASCII.hexValue(buf[i]) {
                    // Saturate instead of overflowing: anything this big is over the limit anyway.
                    size = size > (Int.max - 15) / 16 ? Int.max : size * 16 + d
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return .error(status: 400, reason: "invalid chunk size") }
                while i < e && (buf[i] == ASCII.sp || buf[i] == ASCII.ht) { i += 1 }
                if i < e {
                    guard buf[i] == ASCII.semicolon else { return .error(status: 400, reason: "invalid chunk size") }
                    for k in i..<e {
                        let c = buf[k]
                        if (c < 0x20 && c != ASCII.ht) || c == 0x7F { return .error(status: 400, reason: "invalid chunk extension") }
                    }
                }
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
                guard chunkPos < n else { return .needMore }
                if buf[chunkPos] == ASCII.lf {
                    chunkPos += 1
                } else if buf[chunkPos] == ASCII.cr {
                    guard chunkPos + 1 < n else { return .needMore }
                    guard buf[chunkPos + 1] == ASCII.lf else { return .error(status: 400, reason: "missing CRLF after chunk data") }
                    chunkPos += 2
                } else {
                    return .error(status: 400, reason: "missing CRLF after chunk data")
                }
                chunkPhase = .size
            case .trailer:
                // *( field-line CRLF ) CRLF -- parsed for syntax, then discarded.
                let avail = n - chunkPos
                guard avail > 0, let found = memchr(base + chunkPos, Int32(ASCII.lf), avail) else {
                    if trailerBytes + avail > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                    return .needMore
                }
                let lf = UnsafeRawPointer(found) - base
                var e = lf
                if e > chunkPos && buf[e - 1] == ASCII.cr { e -= 1 }
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
        for k in i..<r.upperBound {
            let c = buf[k]
            if (c < 0x20 && c != ASCII.ht) || c == 0x7F { return .error(status: 400, reason: "invalid trailer field") }
        }
        return nil
    }
}
