import HerdLibc
import Handlers
import HerdSys

/// When a connection ends: its timeouts (head, body, keep-alive, write stall, async deadline),
/// the drain, a hand-off, and the close itself with its reason.
extension HTTPConnection {
    // MARK: - Timeouts and close

    /// The host's sweep; `draining`: the host drains (idle connections close, DrainPolicy).
    func checkTimeouts(now: UInt64, draining: Bool) {
        guard !closed else { return }
        if let call = asyncCall {
            // Waiting for its handler: only the async deadline applies (no header, keep-alive
            // or drain-idle timeout: the client waits for us).
            if now >= call.deadline { host.asyncExpired(self); return }
            // Its body still streaming in: the body timeouts apply (Connection+BodyIn.swift).
            if bodyIn != nil { checkBodyInTimeout(now: now) }
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
        if draining {
            closeIfDrainIdle(now: now)
            return
        }
        if now - lastActivity > settings.keepAliveTimeoutNanos { close(because: .keepAliveTimeout) }
    }

    /// The request in progress missed its deadline (RequestTimeouts): which one, or nil.
    private func requestOverdue(now: UInt64) -> CloseReason? {
        guard let started = requestStartedAt else { return nil }
        return settings.requestTimeouts.overdue(now: now, requestStartedAt: started, bodyStartedAt: bodyStartedAt,
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
        // After the cancellation: a reader of the body sees CancellationError, not this.
        if let body = bodyIn { bodyIn = nil; body.fail(.connectionClosed) }
        if inLongWrite { inLongWrite = false; host.longWrite(-1) }
        endFile()
        stream = nil
        if let p = produced { produced = nil; p.abandon() } // the producer's write throws
        releaseBuffers()
        // Before the fd's close: close() removes the fd from the epoll set only if it is the
        // file's last reference, which a connection handed over by another worker may not be
        // (Worker.connectionClosed removes its registration then).
        host.connectionClosed(self, reason: reason)
        Sys.close(fd)
    }
}
