import HerdLibc
import Handlers
import HerdSys

/// Sizes and times of a connection's writing (a generic class has no static stored properties).
enum ConnectionTuning {
    /// Bytes one connection may write per turn of the event loop before it yields to the others
    /// (WriteBudget.swift).
    static let writeBudget = 256 * 1024
    /// A stream's pieces are gathered up to this many bytes per send.
    static let streamBatch = 16 * 1024
    /// A file body up to this size is read into the output buffer after the head, so head and
    /// body leave in one send (one TCP segment) instead of send + sendfile (issue 25).
    static let inlineFileBytes = 16 * 1024
    /// A stream's pieces cost CPU per byte (the handler makes them): it also yields once the
    /// turn of the loop is this old (checked per batch; the clock is a vDSO call).
    static let streamSliceNanos: UInt64 = 5_000_000
    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
}

/// One accepted HTTP/1.1 connection: input buffer and incremental parser (pipelining), output
/// buffer, sendfile for file bodies, chunked streams, timeouts and a lingering close after
/// errors. Edge-triggered: every read and write goes until EAGAIN. Everything else (clock,
/// handler, counters, epoll) it asks of its `Host` through `ConnectionHost` (ConnectionHost.swift);
/// a worker's connections are `HTTPConnection<Worker>` (`Connection`).
final class HTTPConnection<Host: ConnectionHost> {
    let fd: Int32
    let listener: Int
    let peer: PeerAddress
    /// The host owns every connection and outlives it (a worker's run loop never returns), so
    /// no reference counting on this hot reference: unowned(unsafe) skips the unowned-retain
    /// each access would otherwise pay.
    unowned(unsafe) let host: Host

    /// Input bytes: valid ones are inputStart..<inputEnd. Raw memory owned by the connection
    /// while it holds it, rather than an array: recv and the parser take pointers into it, and
    /// an array's withUnsafe(Mutable)Bytes pays a uniqueness and an exclusivity check each time.
    /// Held only while a request is in progress: taken from the worker's BufferPool when bytes
    /// arrive, given back when the connection is idle again (releaseBuffersIfIdle).
    private var input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var inputStart = 0
    private var inputEnd = 0
    /// Set after a protocol error: close with a lingering drain of the client's data.
    private var lingerWanted = false
    /// The parser's state (320 bytes inline) is pooled like the buffers: held from the first
    /// parse of a request until the connection is idle again, at a request boundary.
    private var parserBox: ParserBox? = nil
    private var parser: HTTPRequestParser {
        _read { yield heldParser().parser }
        _modify { let box = heldParser(); yield &box.parser }
    }
    private func heldParser() -> ParserBox {
        if let box = parserBox { return box }
        let box = host.buffers.takeParser(limits: host.limits)
        parserBox = box
        return box
    }
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var file: (fd: Int32, offset: Int, remaining: Int)? = nil
    private var stream: (any BodyStream)? = nil
    /// A body whose producer may be slower than the socket (StreamedBody): polled, never pulled.
    private var produced: (any ProducedBodyStream)? = nil
    /// Its last poll found nothing: the producer's wake-up (Worker.streamWoken) resumes writing.
    private var producedPending = false
    private var streamChunked = false
    private var closeAfterWrite = false
    /// Why the connection closes once its last response is out (set with `closeAfterWrite`).
    private var closeReason = CloseReason.responseDone
    private var lingering = false
    private var lingerDeadline: UInt64 = 0
    private var peerClosed = false
    /// epoll reported EPOLLRDHUP/EPOLLHUP (set by the worker before readable()).
    var peerHangUpReported = false
    private var lastActivity: UInt64
    /// When the first byte of a not yet complete request arrived (header timeout).
    private var requestStartedAt: UInt64? = nil
    /// When the request in progress had its head complete and its body started (body rule,
    /// RequestTimeouts.swift), and how many bytes the connection had read by then.
    private var bodyStartedAt: UInt64? = nil
    private var bytesReadAtBodyStart = 0
    /// Bytes read over the connection's life (the body rule's progress).
    private var bytesRead = 0
    private(set) var closed = false
    /// When the next request's wait began, if before the turn that reads it: the moment the
    /// worker that handed the connection over saw it readable (queue-time histogram); 0: the
    /// start of the turn that read it.
    var queuedSince: UInt64 = 0
    /// Taken from the dispatch socket (another worker may still hold the file briefly).
    var received = false
    /// In the host's epoll set. A connection taken from the dispatch socket is served before it
    /// is registered (Worker.adopt): a write that yields meanwhile has no registration to re-arm.
    var registered = false
    /// Requests this connection has carried.
    private var served = 0
    /// An interim "100 Continue" was sent for the request in progress.
    private var sentContinue = false
    /// The async request whose response this connection waits for ("response pending", set by
    /// the host's `handle` when the handler's answer is async): nothing more is parsed
    /// (pipelined bytes wait in the buffer), the connection is not idle, and `finishAsync`
    /// queues the response (Worker/AsyncRequests.swift).
    var asyncCall: AsyncCall? = nil

    /// Stop reading when this much unparsed input is buffered (back-pressure on pipelining).
    private let maxBuffered: Int

    /// Write budget left in this turn (ConnectionTuning.writeBudget); `budgetTurn` is the loop
    /// turn (host.now) the budget was given for.
    private var budgetLeft = 0
    private var budgetTurn: UInt64 = 0
    /// This response yielded at least once: counted by host.longWrite(+1) until it is out (-1).
    private var inLongWrite = false

    init(fd: Int32, listener: Int, peer: PeerAddress, host: Host) {
        self.fd = fd
        self.listener = listener
        self.peer = peer
        self.host = host
        self.lastActivity = host.now
        self.maxBuffered = host.limits.maxHeaderBytes + host.limits.maxBodyBytes + 65536
    }

    /// No request in progress and nothing to send: safe to close at drain or idle timeout.
    var isIdle: Bool { !closed && !lingering && inputEnd == inputStart && !hasPartialRequest && !hasPendingOutput && asyncCall == nil }
    /// A request has started and is not complete (its decoded part may already be released from
    /// the input buffer). Reads the held parser only: an idle connection holds none.
    private var hasPartialRequest: Bool { parserBox?.parser.hasPartialRequest ?? false }
    /// Between requests with nothing buffered, to send or half-parsed: the connection may move
    /// to another worker (Worker/Watcher.swift).
    var canHandOff: Bool { isIdle }
    private var hasPendingOutput: Bool { outputOffset < output.count || file != nil || stream != nil || produced != nil }
    /// Sending a produced body (StreamedBody), which ends when its producer ends.
    var producesBody: Bool { produced != nil }

    // MARK: - Reading

    func readable() {
        guard !closed else { return }
        if lingering { discardInput(); return }
        defer { releaseBuffersIfIdle() }
        while true {
            let bufferFull = fill()
            if closed { return }
            process()
            // Reading stopped at maxBuffered: the socket may hold more, and edge-triggered epoll
            // reports no new edge for bytes that were already there. Go on once processing made
            // room (with output waiting, writable() goes on when it is out).
            if !bufferFull || closed || hasPendingOutput || inputEnd - inputStart >= maxBuffered { break }
        }
        if peerClosed && !closed && !hasPendingOutput {
            // The client is gone (or half-closed after its last request): nothing more to do.
            close(because: .clientClosed)
        }
    }

    /// Reads what the socket has straight into the spare capacity of `input` (valid bytes:
    /// inputStart..<inputEnd). Returns true if it stopped because maxBuffered bytes wait.
    private func fill() -> Bool {
        if input.baseAddress == nil { input = host.buffers.takeInput() }
        while inputEnd - inputStart < maxBuffered {
            if input.count - inputEnd < 4096 {
                compact()
                if input.count - inputEnd < 4096 { resizeInput(input.count + max(16384, input.count)) }
            }
            let room = input.count - inputEnd
            switch Sys.recv(fd, input.baseAddress.map { $0 + inputEnd }, room) {
            case .done(0):
                peerClosed = true
                return false
            case .done(let n):
                inputEnd += n
                bytesRead &+= n
                lastActivity = host.now
                // Short read: the socket buffer was empty after it. Bytes arriving later raise
                // a new edge, so no second recv just to hear EAGAIN. But a FIN that came with
                // these bytes raises none: when epoll reported the hang-up, read on to the EOF.
                if n < room && !peerHangUpReported { return false }
            case .wouldBlock:
                return false
            case .failed:
                close(because: .readError) // ECONNRESET etc.
                return false
            }
        }
        return true
    }

    /// Parses and serves every complete request in the buffer, in order (pipelining), while
    /// the previous responses fit in the output buffer; goes on when they could be sent at once.
    private func process() {
        while true {
            while !closed && !closeAfterWrite && asyncCall == nil && file == nil && stream == nil && produced == nil && output.count - outputOffset < 65536 {
                if inputStart == inputEnd {
                    if !hasPartialRequest { requestStartedAt = nil; bodyStartedAt = nil }
                    break
                }
                let progress = parser.advance(UnsafeRawBufferPointer(rebasing: input[inputStart..<inputEnd]))
                switch progress {
                case .needMore:
                    if requestStartedAt == nil { requestStartedAt = host.now }
                    // Chunk framing already decoded is dropped now: only the decoded body is kept.
                    inputStart += parser.releaseDecodedInput()
                    if bodyStartedAt == nil, let head = parser.pendingHead {
                        // The head is complete: from now on the body rule applies, not the
                        // header timeout.
                        bodyStartedAt = host.now
                        bytesReadAtBodyStart = bytesRead
                        // RFC 9110 10.1.1: a client that sent `Expect: 100-continue` waits for
                        // an interim 100 before it sends the body; the head is within limits.
                        if !sentContinue, head.versionMinor >= 1, head.headers["Expect"]?.lowercased() == "100-continue" {
                            sentContinue = true
                            output.append(contentsOf: ConnectionTuning.continueLine)
                        }
                    }
                    compact()
                    flush()
                    return
                case .error(let status, _):
                    sendError(status)
                case .request(let consumed):
                    inputStart += consumed
                    requestStartedAt = nil
                    bodyStartedAt = nil
                    served += 1
                    sentContinue = false
                    if let request = parser.takeRequest() { serve(request) }
                }
            }
            compact()
            flush()
            // Stopped at the output limit and the socket took it all: the buffered requests
            // are ours to serve now (no event will come for bytes already read).
            guard !closed && !closeAfterWrite && asyncCall == nil && !hasPendingOutput && inputEnd > inputStart else { return }
        }
    }

    /// Moves unparsed bytes to the front of the buffer (rarely: only when space runs out or
    /// everything was consumed) and gives back memory a large request needed.
    private func compact() {
        if inputStart == inputEnd {
            inputStart = 0
            inputEnd = 0
            if input.count > 65536 { resizeInput(4096) }
        } else if inputStart > 0 && input.count - inputEnd < 4096 {
            let live = inputEnd - inputStart
            if let b = input.baseAddress { memmove(b, b + inputStart, live) }
            inputStart = 0
            inputEnd = live
        }
    }

    /// Replaces the input buffer by one of `size` bytes holding the live bytes at its start.
    private func resizeInput(_ size: Int) {
        let live = inputEnd - inputStart
        let replacement = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, live), alignment: 16)
        if live > 0, let to = replacement.baseAddress, let from = input.baseAddress { memcpy(to, from + inputStart, live) }
        input.deallocate()
        input = replacement
        inputStart = 0
        inputEnd = live
    }

    deinit {
        input.deallocate()
    }

    /// Between requests a connection holds no buffer (issue 17): with nothing unparsed and
    /// nothing left to send, its input and output buffers go back to the worker's pool.
    private func releaseBuffersIfIdle() {
        guard inputStart == inputEnd && !hasPartialRequest && !hasPendingOutput && !lingering else { return }
        releaseBuffers()
    }

    private func releaseBuffers() {
        if input.baseAddress != nil {
            host.buffers.giveInput(input)
            input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        inputStart = 0
        inputEnd = 0
        if output.capacity > 0 {
            host.buffers.giveOutput(&output)
            outputOffset = 0
        }
        if let box = parserBox {
            host.buffers.giveParser(box)
            parserBox = nil
        }
    }

    private func serve(_ request: HTTPRequest) {
        // host.now is when this turn of the loop began, i.e. when the request's bytes were read.
        let started = host.now
        let readyAt = queuedSince != 0 ? queuedSince : started
        queuedSince = 0
        // Overload: a request that waited too long is answered 503 at once and the connection
        // closed (its client's next try goes to the back of the queue, or elsewhere).
        if let shed = host.shedResponse(request, on: self, readyAt: readyAt) {
            queue(shed, isHEAD: request.isHEAD, keepAlive: false, versionMinor: request.versionMinor)
            host.requestFinished(request, status: shed.status, on: self, startedAt: started)
            return
        }
        // nil: an async request; the response comes later, through finishAsync.
        guard let response = host.handle(request, on: self, readyAt: readyAt) else { return }
        queue(response, isHEAD: request.isHEAD, keepAlive: request.keepAlive && host.keepAliveAllowed,
              versionMinor: request.versionMinor)
        host.requestFinished(request, status: response.status, on: self, startedAt: started)
    }

    /// The async request's response (its handler's, or the host's when it gave up): queued like
    /// a synchronous one, then the pipelined requests that waited are served.
    func finishAsync(_ response: HTTPResponse) {
        guard let call = asyncCall, !closed else { return }
        asyncCall = nil
        let request = call.request
        queue(response, isHEAD: request.isHEAD, keepAlive: request.keepAlive && host.keepAliveAllowed,
              versionMinor: request.versionMinor)
        host.requestFinished(request, status: response.status, on: self, startedAt: call.startedAt)
        lastActivity = host.now
        process() // flushes, and serves what was read meanwhile
        if peerClosed && !closed && !hasPendingOutput { close(because: .clientClosed) }
        if !closed { releaseBuffersIfIdle() }
    }

    private func sendError(_ status: Int, reason: CloseReason = .protocolError) {
        queue(HTTPResponse.errorResponse(status: status), isHEAD: false, keepAlive: false, versionMinor: 1)
        closeReason = reason
        // After a protocol error the rest of the input is garbage: drop it and linger-close so
        // the client reads the error instead of a reset.
        inputStart = 0
        inputEnd = 0
        lingerWanted = true
    }

    private func queue(_ response: HTTPResponse, isHEAD: Bool, keepAlive: Bool, versionMinor: Int) {
        if output.capacity == 0 { output = host.buffers.takeOutput() }
        let framing = HTTPResponseHead.serialize(response, requestIsHEAD: isHEAD, keepAlive: keepAlive,
                                                 versionMinor: versionMinor, date: host.httpDate, into: &output)
        var keep = keepAlive
        switch framing {
        case .none:
            response.body.discard() // HEAD, 304: the file is closed, a producer never started
        case .contentLength:
            switch response.body {
            case .bytes(let b): output.append(contentsOf: b)
            case .file(let f, let offset, let count):
                if count <= ConnectionTuning.inlineFileBytes && appendFile(f, offset: offset, count: count) {
                    Sys.close(f)
                } else {
                    file = (f, offset, count)
                }
            case .stream(let s): setStream(s, chunked: false)
            }
        case .chunked:
            if case .stream(let s) = response.body { setStream(s, chunked: true) }
        case .closeDelimited:
            if case .stream(let s) = response.body { setStream(s, chunked: false) }
            keep = false
        }
        if !keep { closeAfterWrite = true; closeReason = .responseDone }
        host.responded(status: response.status)
    }

    /// The body to send after the head: a produced one starts its producer now.
    private func setStream(_ s: any BodyStream, chunked: Bool) {
        streamChunked = chunked
        if let p = s as? any ProducedBodyStream {
            produced = p
            producedPending = false
            host.startProducer(p, for: self)
        } else {
            stream = s
        }
    }

    /// Reads `count` bytes of `fd` from `offset` onto `output`; false (output unchanged) on a
    /// short read or an error, and then the body goes by sendfile, which notices a shrunk file.
    private func appendFile(_ fd: Int32, offset: Int, count: Int) -> Bool {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: count))
        let r = output.withUnsafeMutableBytes { Sys.pread(fd, $0.baseAddress.map { $0 + start }, count, at: offset) }
        if case .done(let n) = r, n == count { return true }
        output.removeSubrange(start...)
        return false
    }

    // MARK: - Writing

    func writable() {
        // Edge-triggered epoll reports EPOLLOUT together with every EPOLLIN (the socket is
        // writable whenever it becomes readable): without output waiting there is nothing to do,
        // and readable() already ran for the same event. (Acting on it would cost one extra
        // recv per request, answered EAGAIN.)
        guard !closed, hasPendingOutput else { return }
        defer { releaseBuffersIfIdle() }
        flush()
        // Output drained: serve pipelined requests that waited, and input we stopped reading.
        if !closed && !hasPendingOutput && !lingering {
            if inputEnd > inputStart { process() }
            if !closed && !hasPendingOutput { readable() }
        }
    }

    /// Writes as much pending output as the socket takes, within this turn's write budget.
    private func flush() {
        if budgetTurn != host.now {
            budgetTurn = host.now
            budgetLeft = ConnectionTuning.writeBudget
        }
        while !closed {
            if hasPendingOutput && (budgetLeft <= 0
                || (stream != nil && outputOffset == output.count && monotonicNanos() &- host.now > ConnectionTuning.streamSliceNanos)) {
                // Budget spent, socket still writable: yield (back after the other ready events).
                if !inLongWrite { inLongWrite = true; host.longWrite(1) }
                if !host.yieldWrite(self) { close(because: .internalError) }
                return
            }
            if outputOffset < output.count {
                // MSG_MORE when a sendfile follows (nginx's tcp_nopush): the head waits to share
                // a segment with the file's first bytes instead of leaving alone.
                let more = file != nil ? Int32(MSG_MORE) : 0
                let r = output.withUnsafeBytes { raw in
                    Sys.send(fd, raw.baseAddress.map { $0 + outputOffset }, output.count - outputOffset, flags: more)
                }
                guard case .done(let n) = r else {
                    if r == .wouldBlock { return }
                    close(because: .writeError); return
                }
                outputOffset += n
                budgetLeft -= n
                host.countBytesOut(n)
                lastActivity = host.now
            } else if var f = file {
                // sendfile: the file's pages go from the page cache to the socket, no copy
                // through user space.
                var off = off_t(f.offset)
                let r = Sys.sendfile(fd, f.fd, &off, min(f.remaining, budgetLeft))  // within the turn's budget
                guard case .done(let n) = r, n > 0 else {
                    if r == .wouldBlock { return }
                    // An error, or 0: the file shrank under us.
                    Sys.close(f.fd); file = nil; close(because: .writeError); return
                }
                f.offset = Int(off)
                f.remaining -= n
                budgetLeft -= n
                host.countBytesOut(n)
                lastActivity = host.now
                if f.remaining == 0 { Sys.close(f.fd); file = nil } else { file = f }
            } else if let s = stream {
                output.removeAll(keepingCapacity: true)
                outputOffset = 0
                // Several pieces per send: a stream of small pieces would otherwise cost a send each.
                while output.count < ConnectionTuning.streamBatch {
                    guard let chunk = s.next() else {
                        if streamChunked { output.append(contentsOf: HTTPResponseHead.lastChunk) }
                        stream = nil
                        break
                    }
                    if streamChunked { if !chunk.isEmpty { HTTPResponseHead.chunk(chunk, into: &output) } }
                    else { output.append(contentsOf: chunk) }
                }
            } else if let p = produced {
                if producedPending { return } // its producer's wake-up brings us back
                output.removeAll(keepingCapacity: true)
                outputOffset = 0
                pullProduced(p)
            } else {
                if inLongWrite { inLongWrite = false; host.longWrite(-1) }
                output.removeAll(keepingCapacity: output.capacity <= 65536)
                outputOffset = 0
                if closeAfterWrite { finishAfterResponse() }
                return
            }
        }
    }

    /// Takes what the producer has ready (up to a batch per send), its end, or its failure.
    private func pullProduced(_ p: any ProducedBodyStream) {
        while output.count < ConnectionTuning.streamBatch {
            switch p.poll() {
            case .bytes(let chunk):
                if streamChunked { if !chunk.isEmpty { HTTPResponseHead.chunk(chunk, into: &output) } }
                else { output.append(contentsOf: chunk) }
            case .notYet:
                producedPending = true
                return
            case .end:
                if streamChunked { output.append(contentsOf: HTTPResponseHead.lastChunk) }
                produced = nil
                return
            case .failed:
                // Cut short: what was produced goes out, then the connection closes without
                // the last chunk, so the client sees an incomplete body, not a complete one.
                produced = nil
                closeAfterWrite = true
                closeReason = .internalError
                lingerWanted = true
                return
            }
        }
    }

    /// The producer of the body has news after a `.notYet`: write on (Worker.streamWoken).
    func producerWoke() {
        guard !closed, produced != nil, producedPending else { return }
        producedPending = false
        writable()
    }

    /// Ends a produced body before its end (drain past its time): the client sees it cut.
    func abandonProducedBody() {
        guard produced != nil else { return }
        close(because: .drain)
    }

    /// The last response is out. Close, or, if the client may still be sending (unread input,
    /// an error mid-request), shut down our side and drain theirs briefly so the kernel does not
    /// answer their data with a reset that would destroy our response in flight.
    private func finishAfterResponse() {
        if peerClosed { close(because: .clientClosed); return }
        if lingerWanted || inputEnd > inputStart {
            // Fails only if the peer is gone (ENOTCONN): discardInput() then reads the error
            // and closes.
            do { try Sys.shutdown(fd, Int32(SHUT_WR)) } catch {}
            lingering = true
            lingerDeadline = host.now + 2_000_000_000
            discardInput()
        } else {
            close(because: closeReason)
        }
    }

    private func discardInput() {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            switch scratch.withUnsafeMutableBytes({ Sys.recv(fd, $0.baseAddress, $0.count) }) {
            case .done(let n) where n > 0: continue
            case .wouldBlock: return
            case .done, .failed: close(because: closeReason); return // EOF or error: the linger is over
            }
        }
    }

    // MARK: - Timeouts and close

    func checkTimeouts(now: UInt64) {
        guard !closed else { return }
        if let call = asyncCall {
            // Waiting for its handler: only the async deadline applies (no header, keep-alive
            // or drain-idle timeout: the client waits for us).
            if now >= call.deadline { host.asyncExpired(self) }
            return
        }
        if lingering {
            if now >= lingerDeadline { close(because: closeReason) }
            return
        }
        if producedPending && outputOffset == output.count {
            return // all sent; the producer has not written more yet (its pace, not the client's)
        }
        if hasPendingOutput {
            if now - lastActivity > 60_000_000_000 { close(because: .writeStall) } // client stopped reading
            return
        }
        if requestStartedAt != nil {
            guard requestOverdue(now: now) != nil else { return }
            // The verdict is on the client, so first take what it has sent: bytes that waited
            // in the socket while the worker was busy (a handler of another connection, a long
            // turn) are its progress, not its stall. Reading may complete the request.
            readable()
            guard !closed, requestStartedAt != nil, let reason = requestOverdue(now: now) else { return }
            sendError(408, reason: reason)
            flush()
            return
        }
        if host.draining {
            closeIfDrainIdle(now: now)
            return
        }
        if now - lastActivity > host.keepAliveTimeoutNanos { close(because: .keepAliveTimeout) }
    }

    /// The request in progress missed its deadline (RequestTimeouts): which one, or nil.
    private func requestOverdue(now: UInt64) -> CloseReason? {
        guard let started = requestStartedAt else { return nil }
        return host.requestTimeouts.overdue(now: now, requestStartedAt: started, bodyStartedAt: bodyStartedAt,
                                            bodyBytes: bytesRead &- bytesReadAtBodyStart, lastReadAt: lastActivity)
    }

    /// Drain started: close the connection only if it is truly idle (DrainPolicy). Any other
    /// keep-alive connection stays open: its next request is answered with `Connection: close`.
    func drain() {
        closeIfDrainIdle(now: host.now)
    }

    /// Closes the connection for the drain if it is idle and has been silent for DrainPolicy's
    /// second. Silent as far as we have read: a request may have arrived while the worker was
    /// busy (a handler, a long turn, descheduled) and wait unread in the socket, with its
    /// readiness event not handled yet. So read first: a request on its way is served (with
    /// `Connection: close`), a client's EOF closes as such; closing on unread bytes would
    /// reset the connection and lose that request (found by the chaos test, issue 24).
    private func closeIfDrainIdle(now: UInt64) {
        guard drainMayClose(now) else { return }
        let silentSince = lastActivity
        readable() // what waited unread in the socket
        if drainMayClose(now) && lastActivity == silentSince { close(because: .drain) }
    }

    private func drainMayClose(_ now: UInt64) -> Bool { isIdle && DrainPolicy.mayClose(idleFor: now &- lastActivity) }

    /// Handed to another worker (Worker/Dispatch.swift) while idle: forget it without touching
    /// the socket (the watcher already sent it and closed our copy).
    func handedOff() { forget(because: .handOff) }

    /// Our copy of the socket was closed elsewhere (handed off, or answered 503 by the
    /// watcher): release what we hold and count `reason`, without a close().
    func forget(because reason: CloseReason) {
        guard !closed else { return }
        closed = true
        releaseBuffers()
        host.connectionClosed(self, reason: reason)
    }

    /// Closes the socket; `reason` is counted and logged by the host (CloseReason.swift).
    func close(because reason: CloseReason) {
        guard !closed else { return }
        closed = true
        if let call = asyncCall {
            asyncCall = nil
            host.asyncAbandoned(call)
        }
        if inLongWrite { inLongWrite = false; host.longWrite(-1) }
        if let f = file { Sys.close(f.fd); file = nil }
        stream = nil
        if let p = produced { produced = nil; p.abandon() } // the producer's write throws
        releaseBuffers()
        // close() also removes the fd from the epoll set (it is its only reference; for a
        // connection handed over by another worker, not necessarily: see unregisterReceived).
        if received { host.unregisterReceived(fd) }
        Sys.close(fd)
        host.connectionClosed(self, reason: reason)
    }
}
