import HerdLibc
import Handlers
import HerdSys

/// Sizes and times of a connection's writing (a generic class has no static stored properties).
enum ConnectionTuning {
    /// Bytes one connection may write per turn of the event loop before it yields to the others
    /// (WriteBudget.swift).
    static let writeBudget = 256 * 1024
    /// The budget of a turn that writes a file body (sendfile). sendfile costs no user-space
    /// copy, so its bytes are cheap: 256 KiB per turn made a 20 MB file 80 turns, each with an
    /// EPOLL_CTL_MOD to re-arm, and about 1.3x the CPU per request of 2 MiB (docs/static.md).
    /// nginx's sendfile_max_chunk is 2 MiB too. Other connections still get a turn every 2 MiB.
    static let fileWriteBudget = 2 * 1024 * 1024
    /// A stream's pieces are gathered up to this many bytes per send.
    static let streamBatch = 16 * 1024
    /// A file body up to this size is read into the output buffer after the head, so head and
    /// body leave in one send (one TCP segment) instead of send + sendfile (issue 25). Above it
    /// the copies (into the buffer, then into the socket) cost more than the second call.
    static let inlineFileBytes = 8 * 1024
    /// A stream's pieces cost CPU per byte (the handler makes them): it also yields once the
    /// turn of the loop is this old (checked per batch; the clock is a vDSO call).
    static let streamSliceNanos: UInt64 = 5_000_000
    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
    /// Undecoded input a connection reads ahead while its request body streams in
    /// (Connection+BodyIn.swift): with the stream's own limit, what a slow handler costs.
    static let bodyInReadAhead = 64 * 1024
}

/// One accepted HTTP/1.1 connection: input buffer and incremental parser (pipelining), output
/// buffer, sendfile for file bodies, chunked streams, timeouts and a lingering close after
/// errors. Edge-triggered: every read and write goes until EAGAIN. What its host fixes (limits,
/// buffer pool, timeouts) it is given at init (`ConnectionSettings`); everything else (clock,
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
    let settings: ConnectionSettings

    /// Input bytes: valid ones are inputStart..<inputEnd. Raw memory owned by the connection
    /// while it holds it, rather than an array: recv and the parser take pointers into it, and
    /// an array's withUnsafe(Mutable)Bytes pays a uniqueness and an exclusivity check each time.
    /// Held only while a request is in progress: taken from the worker's BufferPool when bytes
    /// arrive, given back when the connection is idle again (releaseBuffersIfIdle).
    private var input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    var inputStart = 0
    var inputEnd = 0
    /// Set after a protocol error: close with a lingering drain of the client's data.
    var lingerWanted = false
    /// The parser's state (320 bytes inline) is pooled like the buffers: held from the first
    /// parse of a request until the connection is idle again, at a request boundary.
    var parserBox: ParserBox? = nil
    var parser: HTTPRequestParser {
        _read { yield heldParser().parser }
        _modify { let box = heldParser(); yield &box.parser }
    }
    private func heldParser() -> ParserBox {
        if let box = parserBox { return box }
        let box = settings.buffers.takeParser(limits: settings.limits)
        // Only where the handler may stream bodies does a head with a body stop for a decision.
        box.parser.pauseAfterHead = mayStreamBodies
        parserBox = box
        return box
    }
    var output: [UInt8] = []
    var outputOffset = 0
    var file: (fd: Int32, offset: Int, remaining: Int)? = nil
    /// The holder of `file`'s fd when it is shared (`ResponseBody.sharedFile`): kept until the
    /// file is sent, never closed by the connection.
    var fileHolder: (any SharedFile)? = nil
    var stream: (any BodyStream)? = nil
    /// A body whose producer may be slower than the socket (StreamedBody): polled, never pulled.
    var produced: (any ProducedBodyStream)? = nil
    /// Its last poll found nothing: the producer's wake-up (Worker.streamWoken) resumes writing.
    var producedPending = false
    var streamChunked = false
    var closeAfterWrite = false
    /// TCP_CORK is set: a last response (`Connection: close`) whose body goes by sendfile, as
    /// nginx's `tcp_nopush`, never lifted (the close sends what is held, with the FIN in the
    /// last data segment). With TCP_NODELAY and MSG_MORE alone, the head shared an skb with the
    /// first 64 KiB of a large file and an ACK-driven transmit sent its partial tail as a
    /// segment of its own (docs/static.md, "The 1 MB Connection: close gap"); and the FIN left
    /// as a segment of its own after the last sendfile (16 KB: 10 segments per exchange
    /// against nginx's 9; with the cork 9, and 6 % more req/s).
    var corked = false
    /// Why the connection closes once its last response is out (set with `closeAfterWrite`).
    var closeReason = CloseReason.responseDone
    var lingering = false
    var lingerDeadline: UInt64 = 0
    var peerClosed = false
    /// epoll reported EPOLLRDHUP/EPOLLHUP (set by the worker before readable()).
    var peerHangUpReported = false
    var lastActivity: UInt64
    /// When the first byte of a not yet complete request arrived (header timeout).
    var requestStartedAt: UInt64? = nil
    /// When the request in progress had its head complete and its body started (body rule,
    /// RequestTimeouts.swift), and how many bytes the connection had read by then.
    var bodyStartedAt: UInt64? = nil
    var bytesReadAtBodyStart = 0
    /// Bytes read over the connection's life (the body rule's progress).
    var bytesRead = 0
    var closed = false
    /// In the host's epoll set. A connection taken from the dispatch socket is served before it
    /// is registered (Worker.adopt): a write that yields meanwhile has no registration to re-arm.
    var registered = false
    /// Its registration includes EPOLLOUT (`Epoll.connection`): set the first time a write
    /// found the socket full or the turn's write budget spent (the host's `armOutput`),
    /// and kept for the connection's life. Before that, `Epoll.connectionInput`.
    var watchesOutput = false
    /// Requests this connection has carried.
    private var served = 0
    /// An interim "100 Continue" was sent for the request in progress.
    private var sentContinue = false
    /// The async request whose response this connection waits for ("response pending", set by
    /// the host's `handle` when the handler's answer is async): nothing more is parsed
    /// (pipelined bytes wait in the buffer), the connection is not idle, and `finishAsync`
    /// queues the response (Worker/AsyncRequests.swift).
    var asyncCall: AsyncCall? = nil
    /// The request body streaming in to the async request in progress (Connection+BodyIn.swift).
    var bodyIn: RequestBodyStream? = nil
    /// Its reader has `bufferLimit` bytes unread: the connection reads nothing until it took
    /// some (the stream's wake-up, `producerWoke()`).
    var bodyInPaused = false

    /// The listener's handler may stream request bodies (ConnectionSettings.bodiesMayStream).
    let mayStreamBodies: Bool
    /// TCP_NOTSENT_LOWAT to set the first time the socket is full (0: none); then 0.
    var notsentLowatPending: Int32

    /// Write budget left in this turn (ConnectionTuning.writeBudget); `budgetTurn` is the loop
    /// turn (host.now) the budget was given for.
    var budgetLeft = 0
    var budgetTurn: UInt64 = 0
    /// This response yielded at least once: counted by host.longWrite(+1) until it is out (-1).
    var inLongWrite = false

    init(fd: Int32, listener: Int, peer: PeerAddress, host: Host, settings: ConnectionSettings) {
        self.fd = fd
        self.listener = listener
        self.peer = peer
        self.host = host
        self.settings = settings
        self.lastActivity = host.now
        self.mayStreamBodies = settings.bodiesMayStream(on: listener)
        self.notsentLowatPending = settings.notsentLowat(on: listener)
    }

    /// No request in progress and nothing to send: safe to close at drain or idle timeout, and
    /// to move to another worker (Worker/Watcher.swift, Worker/Dispatch.swift).
    var isIdle: Bool { !closed && !lingering && inputEnd == inputStart && !hasPartialRequest && !hasPendingOutput && asyncCall == nil }
    /// A request has started and is not complete (its decoded part may already be released from
    /// the input buffer). Reads the held parser only: an idle connection holds none.
    private var hasPartialRequest: Bool { parserBox?.parser.hasPartialRequest ?? false }
    var hasPendingOutput: Bool { outputOffset < output.count || file != nil || stream != nil || produced != nil }
    /// Sending a produced body (StreamedBody), which ends when its producer ends.
    var producesBody: Bool { produced != nil }

    // MARK: - Reading

    func readable() {
        guard !closed else { return }
        if lingering { discardInput(); return }
        defer { releaseBuffersIfIdle() }
        while !bodyInPaused {
            let bufferFull = fill()
            if closed { return }
            process()
            // Reading stopped at maxBuffered: the socket may hold more, and edge-triggered epoll
            // reports no new edge for bytes that were already there. Go on once processing made
            // room (with output waiting, writable() goes on when it is out).
            if !bufferFull || closed || hasPendingOutput || inputEnd - inputStart >= readLimit { break }
        }
        if peerClosed && !closed && !hasPendingOutput {
            // The client is gone (or half-closed after its last request): nothing more to do.
            close(because: .clientClosed)
        }
    }

    /// Reads what the socket has straight into the spare capacity of `input` (valid bytes:
    /// inputStart..<inputEnd). Returns true if it stopped because maxBuffered bytes wait.
    private func fill() -> Bool {
        if input.baseAddress == nil { input = settings.buffers.takeInput() }
        let limit = readLimit
        while inputEnd - inputStart < limit {
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
    func process() {
        while true {
            while !closed && !closeAfterWrite && (asyncCall == nil || bodyIn != nil) && file == nil && stream == nil && produced == nil && output.count - outputOffset < 65536 {
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
                        // A handler that may stream bodies decides now (the parser paused).
                        if parser.bodyUndecided { decideBody(head); continue }
                    }
                    if bodyIn != nil { feedBodyIn(parser.takeBodyPiece()) }
                    compact()
                    flush()
                    return
                case .error(let status, _):
                    if bodyIn != nil { failBodyIn(status: status, reason: .protocolError) } else { sendError(status) }
                case .request(let consumed):
                    inputStart += consumed
                    requestStartedAt = nil
                    bodyStartedAt = nil
                    served += 1
                    sentContinue = false
                    guard let request = parser.takeRequest() else { break }
                    if bodyIn != nil { endBodyIn(lastPiece: request.body) } else { serve(request) }
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
    func releaseBuffersIfIdle() {
        guard inputStart == inputEnd && !hasPartialRequest && !hasPendingOutput && !lingering else { return }
        releaseBuffers()
    }

    func releaseBuffers() {
        let pool = settings.buffers  // once: each `settings.buffers` is a retain and a release
        if input.baseAddress != nil {
            pool.giveInput(input)
            input = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        }
        inputStart = 0
        inputEnd = 0
        if output.capacity > 0 {
            pool.giveOutput(&output)
            outputOffset = 0
        }
        if let box = parserBox {
            pool.giveParser(box)
            parserBox = nil
        }
    }

    func serve(_ request: HTTPRequest) {
        // host.now is when this turn of the loop began, i.e. when the request's bytes were read.
        let started = host.now
        let response: HTTPResponse
        let keepAlive: Bool
        switch host.handle(request, on: self) {
        case .pending:
            return // an async request; the response comes later, through finishAsync
        case .refused(let refusal):
            // Overload: a request that waited too long is answered 503 at once and the
            // connection closed (its client's next try goes to the back of the queue, or elsewhere).
            response = refusal
            keepAlive = false
        case .response(let answer):
            response = answer
            // A streamed body the handler did not wait for: the connection closes after the answer.
            keepAlive = request.keepAlive && host.keepAliveAllowed && bodyIn == nil
        }
        queue(response, isHEAD: request.isHEAD, keepAlive: keepAlive, versionMinor: request.versionMinor)
        if bodyIn != nil { abandonBodyIn() }
        host.responded(status: response.status, to: request, startedAt: started, on: self)
    }

    /// The async request's response (its handler's, or the host's when it gave up): queued like
    /// a synchronous one, then the pipelined requests that waited are served.
    func finishAsync(_ response: HTTPResponse) {
        guard let call = asyncCall, !closed else { return }
        asyncCall = nil
        let request = call.request
        queue(response, isHEAD: request.isHEAD, keepAlive: request.keepAlive && host.keepAliveAllowed && bodyIn == nil,
              versionMinor: request.versionMinor)
        if bodyIn != nil { abandonBodyIn() }
        host.responded(status: response.status, to: request, startedAt: call.startedAt, on: self)
        lastActivity = host.now
        process() // flushes, and serves what was read meanwhile
        if peerClosed && !closed && !hasPendingOutput { close(because: .clientClosed) }
        if !closed { releaseBuffersIfIdle() }
    }
}
