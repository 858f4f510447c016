import Handlers

/// A request body that streams in to its async handler (docs/async.md, "Streamed request
/// bodies"): the handler's work starts at the end of the head, and the connection feeds the
/// body's pieces into a `RequestBodyStream` as it reads them, on the worker's loop.
///
/// - The decision: where the listener's handler may stream (`settings.bodiesMayStream`), the
///   parser stops after a head with a body; `host.bodyStream` asks the handler. No stream: the
///   body is gathered as usual (the parser goes on where it stopped).
/// - Back-pressure: once the stream holds its limit unread, the connection stops reading
///   (`bodyInPaused`: readable() reads nothing, and edge-triggered epoll wakes nobody); the
///   reader's take below the limit wakes it through the host (`producerWoke()`), and it reads on.
///   Read-ahead is bounded too (`readLimit`): unread bytes wait in the socket, not in memory.
/// - The limits hold: `--max-body` (chunked: 413 mid-body; Content-Length: 413 at the head,
///   before any handler), the body timeouts (408) while the client, not the handler, is slow,
///   and a bad chunk (400). The stream then throws, the handler's task is cancelled, and the
///   error answers the request (no response was queued: it is queued when the handler returns).
/// - The handler answers before the body's end: the rest is not read. The response says
///   `Connection: close` and the connection closes after it with a lingering drain, so the
///   client reads the answer instead of a reset (safer than reading an unbounded rest).
extension HTTPConnection {
    /// How many undecoded bytes `fill()` reads ahead: while a body streams, and, where bodies
    /// may stream, until the body of the request in progress is known to be gathered (a head
    /// and what a read brought with it), not all that a large upload's socket holds.
    var readLimit: Int {
        if bodyIn != nil { return ConnectionTuning.bodyInReadAhead }
        if mayStreamBodies && !(parserBox?.parser.bodyGathered ?? false) { return settings.limits.maxHeaderBytes + ConnectionTuning.bodyInReadAhead }
        return settings.maxBuffered
    }

    /// The parser paused after `head`, which has a body: stream it, or gather it as usual.
    func decideBody(_ head: HTTPRequest) {
        guard let body = host.bodyStream(for: head, on: self) else { parser.collectBody(); return }
        parser.streamBody()
        bodyIn = body
        serve(head) // the handler starts now; its body is `context.requestBody`
    }

    /// Passes decoded body bytes to the stream; pauses reading when its reader lags.
    func feedBodyIn(_ piece: [UInt8]) {
        guard let body = bodyIn, !piece.isEmpty else { return }
        if !body.feed(piece) { bodyInPaused = true }
    }

    /// The body is complete: its last piece, then the end.
    func endBodyIn(lastPiece: [UInt8]) {
        guard let body = bodyIn else { return }
        _ = body.feed(lastPiece)
        body.finish()
        bodyIn = nil
        bodyInPaused = false
    }

    /// The body cannot be completed (`status`: 413, 400 or 408): the stream throws, the
    /// handler's task is cancelled and `status` answers the request; the connection closes.
    func failBodyIn(status: Int, reason: CloseReason) {
        guard let body = bodyIn else { return }
        bodyIn = nil
        bodyInPaused = false
        body.fail(status == 413 ? .tooLarge : status == 408 ? .timedOut : .malformed)
        if let call = asyncCall {
            asyncCall = nil
            host.asyncAbandoned(call)
        }
        sendError(status, reason: reason)
    }

    /// The handler answered before the body's end (the answer is queued with
    /// `Connection: close`): nobody reads the rest. Close after the answer, lingering.
    func abandonBodyIn() {
        guard let body = bodyIn else { return }
        bodyIn = nil
        bodyInPaused = false
        body.fail(.connectionClosed)
        closeAfterWrite = true
        lingerWanted = true
        inputStart = 0
        inputEnd = 0
    }

    /// The reader took some of the body after a pause: read on. The wait was the handler's,
    /// not the client's, so the body timeouts start over.
    func bodyInRoom() {
        guard !closed, bodyIn != nil, bodyInPaused else { return }
        bodyInPaused = false
        lastActivity = host.now
        bodyStartedAt = host.now
        bytesReadAtBodyStart = bytesRead
        process() // what was read ahead
        if !closed && !bodyInPaused { readable() }
    }

    /// The sweep, while the body streams: the body timeouts apply unless the handler is the
    /// one that waits (paused). Like for a gathered body, what waits in the socket is read first.
    func checkBodyInTimeout(now: UInt64) {
        guard !bodyInPaused, let started = requestStartedAt else { return }
        let timeouts = settings.requestTimeouts
        func overdue() -> CloseReason? {
            timeouts.overdue(now: now, requestStartedAt: started, bodyStartedAt: bodyStartedAt,
                             bodyBytes: bytesRead &- bytesReadAtBodyStart, lastReadAt: lastActivity)
        }
        guard overdue() != nil else { return }
        readable()
        guard !closed, bodyIn != nil, !bodyInPaused, let reason = overdue() else { return }
        failBodyIn(status: 408, reason: reason)
        flush()
    }
}
