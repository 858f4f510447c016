import HerdLibc
import Handlers
import HerdSys

/// A connection's output: a response queued (head serialized, body as bytes, a file for
/// sendfile, a stream or a produced body), written within the turn's budget, then the close or
/// keep-alive that follows it.
extension HTTPConnection {
    func sendError(_ status: Int, reason: CloseReason = .protocolError) {
        queue(HTTPResponse.errorResponse(status: status), isHEAD: false, keepAlive: false, versionMinor: 1)
        host.responded(status: status, to: nil, startedAt: host.now, on: self)
        closeReason = reason
        // After a protocol error the rest of the input is garbage: drop it and linger-close so
        // the client reads the error instead of a reset.
        inputStart = 0
        inputEnd = 0
        lingerWanted = true
    }

    func queue(_ response: HTTPResponse, isHEAD: Bool, keepAlive: Bool, versionMinor: Int) {
        if output.capacity == 0 { output = settings.buffers.takeOutput() }
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
            case .sharedFile(let holder, let offset, let count):
                // Never read into the output: a holder shares a file to save the copy.
                if count > 0 {
                    file = (holder.fd, offset, count)
                    fileHolder = holder
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
    func flush() {
        if budgetTurn != host.now {
            budgetTurn = host.now
            budgetLeft = file != nil ? ConnectionTuning.fileWriteBudget : ConnectionTuning.writeBudget
        }
        while !closed {
            if hasPendingOutput && (budgetLeft <= 0
                || (stream != nil && outputOffset == output.count && monotonicNanos() &- host.now > ConnectionTuning.streamSliceNanos)) {
                // Budget spent, socket still writable: yield (back after the other ready events).
                if !inLongWrite { inLongWrite = true; host.longWrite(1) }
                watchesOutput = true
                if !host.armOutput(self) { close(because: .internalError) }
                return
            }
            if outputOffset < output.count {
                // MSG_MORE when a sendfile follows (nginx's tcp_nopush): the head waits to share
                // a segment with the file's first bytes instead of leaving alone.
                // And on the last bytes before the close (a `Connection: close` response with
                // no body still to come): they wait for the FIN, which the close then adds to
                // their segment (tcp_send_fin joins an unsent tail), instead of a FIN segment
                // of its own: 9 segments per 1 KB `Connection: close` exchange, as nginx's
                // (whose TCP_CORK holds the data until its close), instead of 10.
                var more = file != nil || (closeAfterWrite && stream == nil && produced == nil) ? Int32(MSG_MORE) : 0
                if !corked, closeAfterWrite, file != nil {
                    // Best effort: where the cork cannot be set (not TCP), MSG_MORE below still
                    // holds the head back, as before the cork.
                    corked = (try? Sys.setOption(fd, Int32(IPPROTO_TCP), TCP_CORK, Int32(1), what: "TCP_CORK")) != nil
                }
                if corked { more = 0 }
                let r = output.withUnsafeBytes { raw in
                    Sys.send(fd, raw.baseAddress.map { $0 + outputOffset }, output.count - outputOffset, flags: more)
                }
                guard case .done(let n) = r else {
                    if r == .wouldBlock { waitForRoom(); return }
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
                    if r == .wouldBlock { waitForRoom(); return }
                    // An error, or 0: the file shrank under us.
                    endFile(); close(because: .writeError); return
                }
                f.offset = Int(off)
                f.remaining -= n
                budgetLeft -= n
                host.countBytesOut(n)
                lastActivity = host.now
                if f.remaining == 0 { endFile() } else { file = f }
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

    /// The socket is full: the host reports it writable when it has room (the first time, its
    /// registration gains EPOLLOUT: `armOutput`; after that, EPOLLOUT's edge comes by itself).
    private func waitForRoom() {
        if notsentLowatPending > 0 { limitUnsent() }
        guard !watchesOutput else { return }
        watchesOutput = true
        if !host.armOutput(self) { close(because: .internalError) }
    }

    /// TCP_NOTSENT_LOWAT (config `notsent-lowat`; auto: 16 KiB in a worker whose handlers never
    /// block), set the first time the socket is full: a connection whose responses fit its
    /// buffer never pays the call, and the first fill of a new connection's buffer (a 1 MB
    /// `Connection: close` response often fits it whole) costs no extra wake-ups.
    /// Without it, each sendfile or send fills the send buffer (the kernel grows it up to
    /// 4 MiB) far past what the peer's window lets out, and the rest leaves from the ACK path.
    /// With it, the kernel takes what it can send now plus this much, and EPOLLOUT comes back
    /// when less than half of that is left: the worker's own call sends. Measured with wrk on
    /// 127.0.0.1 (docs/static.md, "notsent-lowat"): a 20 MB file at 64 connections went from
    /// 0.97x nginx's requests per second to 1.66x, the machine's CPU per response from 14.6 to
    /// 8.6 ms, wrk's receive buffers grew to megabytes and sent a third of the ACKs; herdd's
    /// own CPU share rises, as on loopback the transmit (and its receive) that wrk's ACKs ran
    /// now runs in the worker. Best effort: on a TCP socket the call fails only on a kernel
    /// older than 3.12, and then the socket keeps the system's value.
    private func limitUnsent() {
        let bytes = notsentLowatPending
        notsentLowatPending = 0
        _ = try? Sys.setOption(fd, Int32(IPPROTO_TCP), TCP_NOTSENT_LOWAT, bytes, what: "TCP_NOTSENT_LOWAT")
    }

    /// The file body is done (sent, failed or cut): close its fd, or let go of a shared one.
    func endFile() {
        if let f = file, fileHolder == nil { Sys.close(f.fd) }
        file = nil
        fileHolder = nil
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
    /// Also the wake-up of a streamed request body's reader that made room (bodyInRoom).
    func producerWoke() {
        if bodyInPaused { bodyInRoom() }
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

    func discardInput() {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            switch scratch.withUnsafeMutableBytes({ Sys.recv(fd, $0.baseAddress, $0.count) }) {
            case .done(let n) where n > 0: continue
            case .wouldBlock: return
            case .done, .failed: close(because: closeReason); return // EOF or error: the linger is over
            }
        }
    }
}
