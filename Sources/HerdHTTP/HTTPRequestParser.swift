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
///
/// Files: this one holds the state and the entry points (`advance`, `takeRequest`,
/// `releaseDecodedInput`); HTTPRequestParser+Head.swift finds and judges the head (request line,
/// fields, framing), HTTPRequestParser+Chunked.swift decodes a chunked body as it arrives,
/// HTTPRequestParser+Names.swift interns common methods and field names. Members the extensions
/// share are internal (not private) only so that they can live in separate files.
package struct HTTPRequestParser: Sendable {
    package enum ParseResult: Sendable {
        case needMore
        case request(HTTPRequest, consumed: Int)
        case error(status: Int, reason: String)
    }

    package let limits: HTTPLimits

    /// Longest chunk-size line (size + extensions) accepted.
    static let maxChunkLine = 4096

    // MARK: state kept across `.needMore`

    enum BodyFraming { case none, length(Int), chunked }

    /// A parsed head whose body has not fully arrived yet.
    struct Head {
        var request: HTTPRequest
        var framing: BodyFraming
        var end: Int  // offset just past the head's blank line
    }

    enum ChunkPhase { case size, data(remaining: Int), dataEnd, trailer }

    var headStart = -1      // offset of the request line (after leading blank lines); -1 = not found yet
    var scanPos = 0         // next offset to scan for a line ending
    var lineCount = 0       // complete head lines seen (request line included)
    var head: Head?
    /// The request `advance` reported complete, until `takeRequest()`.
    var completed: HTTPRequest?
    var chunkPhase = ChunkPhase.size
    var chunkPos = 0        // next offset to decode in a chunked body
    var chunkBody: [UInt8] = []
    var trailerBytes = 0
    var trailerCount = 0
    /// Decoded body bytes of the request in progress (the `maxBodyBytes` rule).
    var bodyDecoded = 0

    /// What happens to a body (HTTPRequestParser+Streaming.swift): `.collect` gathers it into
    /// the request; with `pauseAfterHead` set, a head with a body stops at `.undecided` until
    /// the caller chooses `collectBody()` or `streamBody()`.
    enum BodyMode { case collect, undecided, stream }
    var bodyMode = BodyMode.collect
    /// Set by a caller that may stream bodies (herdd: a listener whose handler is async).
    package var pauseAfterHead = false
    /// A streamed Content-Length body: bytes still to come.
    var lengthLeft = 0

    package init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// The request whose head is complete while its body is still arriving (nil otherwise). The
    /// connection layer uses it to answer `Expect: 100-continue` before the body is sent.
    package var pendingHead: HTTPRequest? { head?.request }

    /// Forgets all progress (the next `parse` starts at a request boundary).
    package mutating func reset() {
        headStart = -1
        scanPos = 0
        lineCount = 0
        head = nil
        chunkPhase = .size
        chunkPos = 0
        chunkBody = []
        trailerBytes = 0
        trailerCount = 0
        bodyDecoded = 0
        bodyMode = .collect
        lengthLeft = 0
    }

    /// Convenience for tests.
    package mutating func parse(_ bytes: [UInt8]) -> ParseResult {
        bytes.withUnsafeBytes { parse($0) }
    }

    package mutating func parse(_ buf: UnsafeRawBufferPointer) -> ParseResult {
        switch advance(buf) {
        case .needMore: return .needMore
        case .error(let status, let reason): return .error(status: status, reason: reason)
        case .request(let consumed):
            guard let request = takeRequest() else { return .error(status: 500, reason: "parser lost its request") }
            return .request(request, consumed: consumed)
        }
    }

    /// What `advance` found.
    package enum Progress: Sendable, Equatable {
        case needMore
        /// A complete request of `consumed` bytes: take it with `takeRequest()`.
        case request(consumed: Int)
        case error(status: Int, reason: String)
    }

    /// The hot-path form of `parse`: the request is not carried in the result but taken with
    /// `takeRequest()` (moved out, not copied: an HTTPRequest holds several reference-counted
    /// strings and arrays, and an enum payload was copied and destroyed at every level).
    package mutating func advance(_ buf: UnsafeRawBufferPointer) -> Progress {
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
    package mutating func takeRequest() -> HTTPRequest? {
        completed.take()
    }

    /// After `.needMore` in a chunked body: how many bytes at the start of the buffer were
    /// decoded (head and chunk framing included) and may now be dropped by the caller, which
    /// then passes the rest starting at offset 0. Offsets are rebased here. Without this a
    /// body sent as many small chunks would keep its framing (several times the body) in the
    /// buffer until the message ends.
    package mutating func releaseDecodedInput() -> Int {
        guard let h = head, chunkPos > 0 else { return 0 }
        if case .length = h.framing, bodyMode != .stream { return 0 }
        let released = chunkPos
        chunkPos = 0
        scanPos = 0
        headStart = 0
        head?.end = 0
        return released
    }

    /// A request has started (bytes of it were seen) and is not complete: true even when the
    /// caller released all its bytes (`releaseDecodedInput`).
    package var hasPartialRequest: Bool { head != nil || headStart >= 0 || scanPos > 0 }

    mutating func step(_ buf: UnsafeRawBufferPointer) -> Progress {
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
                    if pauseAfterHead, !h.framing.isNone { bodyMode = .undecided }
                }
            }
        }
        guard let framing = head?.framing, let end = head?.end else { return .needMore }
        switch bodyMode {
        case .collect: break
        case .undecided: return .needMore  // the caller chooses first
        case .stream: return streamStep(buf, framing: framing)
        }
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
}
