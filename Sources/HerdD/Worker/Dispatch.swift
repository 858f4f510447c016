import HerdLibc
import Handlers
import HerdSys

/// Work-conserving dispatch (docs/design.md): while a worker runs a handler that may block,
/// its Watcher hands the idle keep-alive connections that turn readable to the dispatch socket;
/// idle workers wait on that socket with EPOLLIN | EPOLLEXCLUSIVE, like on a listener, and the
/// one woken takes the connection and serves it as its own.
///
/// The dispatch socket is one AF_UNIX SOCK_SEQPACKET socketpair per master: every worker sends
/// on one end and receives on the other. SEQPACKET keeps datagram boundaries (one connection
/// per recvmsg, never half a message) on a connected pair nobody else can write to. Each
/// datagram carries the connection fd (SCM_RIGHTS) and a payload: listener index and the
/// CLOCK_MONOTONIC time (system-wide) when the watcher saw the connection readable, so the
/// receiver's queue-time histogram covers the hand-over.
struct DispatchPair {
    let sendFD: Int32
    let receiveFD: Int32

    /// Master side: creates the pair, non-blocking (O_NONBLOCK is a file status flag, shared by
    /// every worker's copy: a full queue gives EAGAIN and the sender keeps its connection; an
    /// empty one gives EAGAIN to a receiver that lost the race), both ends moved above the
    /// range handed to children (see Spawn.firstPrivateFD), CLOEXEC until posix_spawn dup2s them.
    init() throws {
        let (a, b) = try Sys.seqpacketPair(nonBlocking: true, what: "dispatch")
        let high: Int32
        do { high = try Sys.moveAbove(a, Spawn.firstPrivateFD, what: "dispatch") } catch {
            Sys.close(b)
            throw error
        }
        do { receiveFD = try Sys.moveAbove(b, Spawn.firstPrivateFD, what: "dispatch") } catch {
            Sys.close(high)
            throw error
        }
        sendFD = high
    }

    /// Worker side: the pair inherited at `fd` (send end) and `fd + 1` (receive end).
    init(inheritedAt fd: Int32) {
        sendFD = fd
        receiveFD = fd + 1
    }

    /// Sends `fd` (non-blocking). Returns 0 or the errno (EAGAIN: queue full).
    func send(_ fd: Int32, listener: Int, readyAt: UInt64) -> Int32 {
        Sys.sendFD(sendFD, fd, listener: UInt64(listener), readyAt: readyAt)
    }

    /// How many bytes one queued connection counts for in `Sys.unsentBytes` of the send end
    /// (the datagram's kernel size: 768 on Linux 6.x with 64-bit pointers). Measured once, on a
    /// pair of our own, sending its receive end and taking it back; nil if that fails.
    static func measureEntryBytes() -> Int? {
        guard let (a, b) = try? Sys.seqpacketPair(nonBlocking: true, what: "dispatch size probe") else { return nil }
        defer { Sys.close(a); Sys.close(b) }
        guard Sys.sendFD(a, b, listener: 0, readyAt: 0) == 0 else { return nil }
        let bytes = try? Sys.unsentBytes(a)
        if case .message(let fd, _, _) = Sys.receiveFD(b), fd >= 0 { Sys.close(fd) }
        guard let bytes, bytes > 0 else { return nil }
        return bytes
    }

    /// Connections waiting on the queue now (all workers' hand-offs), from the send end's
    /// unsent bytes; nil if unknown.
    func queued(entryBytes: Int) -> Int? {
        guard let bytes = try? Sys.unsentBytes(sendFD) else { return nil }
        return bytes / entryBytes
    }

    enum Received {
        case connection(fd: Int32, listener: Int, readyAt: UInt64)
        case empty
        /// A datagram without a usable fd (cannot happen between our own workers; counted).
        case malformed
        case failed(errno: Int32)
    }

    func receive() -> Received {
        switch Sys.receiveFD(receiveFD) {
        case .empty: return .empty
        case .failed(let e): return .failed(errno: e)
        case .message(let fd, let listener, let readyAt):
            guard fd >= 0 else { return .malformed }
            return .connection(fd: fd, listener: Int(truncatingIfNeeded: listener), readyAt: readyAt)
        }
    }
}

extension Worker {
    /// The dispatch socket woke us (level-triggered, EPOLLEXCLUSIVE: one idle worker per
    /// connection). Take one connection per wakeup, like accept: if more are queued, the socket
    /// stays readable and wakes another idle worker while we serve this one.
    func receiveDispatched() {
        guard let dispatch else { return }
        scoreboard.bump(slot, .dispatchWakeups)
        if !takeDispatched(dispatch) { scoreboard.bump(slot, .dispatchEmptyWakeups) }
    }

    /// Takes one connection from the dispatch socket and adopts it. False if it was empty.
    @discardableResult
    func takeDispatched(_ dispatch: DispatchPair) -> Bool {
        while true {
            switch dispatch.receive() {
            case .empty:
                return false
            case .failed(let e):
                log.error("\(SysError("recvmsg", errno: e, detail: "dispatch socket"))", metadata: ["event": "dispatch-error"])
                return false
            case .malformed:
                log.error("dispatch socket: a datagram without a connection", metadata: ["event": "dispatch-error"])
                continue
            case .connection(let fd, let index, let readyAt):
                guard index >= 0, index < listeners.count else {
                    // Same master, same listeners: cannot happen; never serve it on a wrong handler.
                    log.error("dispatch socket: listener index \(index) out of range; closing", metadata: ["event": "dispatch-error"])
                    Sys.close(fd)
                    scoreboard.bump(slot, closed: .internalError)
                    return true
                }
                scoreboard.bump(slot, listener: index, Scoreboard.QueueField.received)
                adopt(fd: fd, listener: index, peer: peerAddress(of: fd), readyAt: readyAt)
                return true
            }
        }
    }

    /// The peer of a connection we did not accept ourselves. ENOTCONN: the client is already
    /// gone; the connection reads EOF and closes.
    func peerAddress(of fd: Int32) -> PeerAddress {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard (try? Sys.peerName(fd, &storage, &len)) != nil else { return PeerAddress(text: "unknown") }
        return withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0, length: Int(len)) }
    }

    /// Before a draining worker exits: serve what is still queued on the dispatch socket, so no
    /// connection handed over is dropped with the last copy of the socket. Every worker does
    /// this after its own last hand-off, so the last one to exit leaves the queue empty.
    func drainDispatchQueue() -> Bool {
        guard let dispatch else { return false }
        var took = false
        while takeDispatched(dispatch) { took = true }
        return took
    }
}

extension Worker {
    /// After a blocking handler: forget the connections the watcher handed off (it closed our
    /// copies; the receiving worker holds its own). Their events still in this turn's batch
    /// are skipped (staleFDs).
    func finishHandOffs(_ watcher: Watcher) {
        let first = staleFDs.count
        var shed = WatcherShedReport()
        watcher.stop(into: &staleFDs, shed: &shed)
        // The ones it answered 503 first (they are among staleFDs, and are no hand-off).
        forgetShed(shed.shedOwn)
        for fd in staleFDs[first...] {
            let i = Int(fd)
            guard i < connections.count, let conn = connections[i] else { continue }
            forgetReleased(conn, because: .handOff)
            scoreboard.bump(slot, listener: conn.listener, Scoreboard.QueueField.handedOff)
        }
        // Last: connections it kept may have the numbers of those just forgotten.
        if !shed.isEmpty { applyWatcherReport(shed) }
    }

    /// Adopts a connection taken from the dispatch socket and serves the request that made it
    /// readable at once, before registering it: a connection taken but left for the next turn
    /// could meet a blocking handler of ours first and be handed off again, to the tail of the
    /// queue, though it was its oldest entry. Taking and serving are one step, so the dispatch
    /// queue stays first in, first out.
    func adopt(fd: Int32, listener index: Int, peer: PeerAddress, readyAt: UInt64) {
        let conn = Connection(fd: fd, listener: index, peer: peer, host: self, settings: connectionSettings)
        dispatchState.arrived(fd, readySince: readyAt, received: true)
        // Registered after the read: EPOLL_CTL_ADD reports what is ready then (bytes that came
        // meanwhile, room for output still waiting), so nothing is missed in between.
        guard register(conn, what: "dispatched connection", serveFirst: true) else { return }
        if listenerMayBlock[index], let watcher { watch(fd, watcher) }
    }

    /// Registers a connection of a listener whose handler may block with the watcher; if that
    /// fails it is served normally, only never handed off.
    func watch(_ fd: Int32, _ watcher: Watcher) {
        do { try watcher.watch(fd) } catch {
            log.warning("\(error); connection not dispatched", metadata: ["event": "dispatch-error"])
        }
    }
}

extension Worker {
    /// Forgets a connection whose fd already left this process (handed off, or answered by the
    /// watcher: `release` closed it) without touching the fd, whose number may be another
    /// connection's by now: what `dispatchState` keeps for it goes first, so `connectionClosed`
    /// removes no registration.
    func forgetReleased(_ conn: Connection, because reason: CloseReason) {
        dispatchState.remove(conn.fd)
        conn.forget(because: reason)
    }

    /// Before a connection taken from the dispatch socket is closed: its sender may still hold
    /// the file for a moment (it closes its copy right after sending), and an epoll registration
    /// lives as long as the file, not the fd: remove ours, or a later connection on the same fd
    /// number would get the old one's events.
    func unregisterReceived(_ fd: Int32) {
        // ENOENT: never registered (closed before adopt() registered it, or not watched).
        do { try epoll.remove(fd, what: "received connection") } catch {
            if error.errno != ENOENT { log.error("\(error)", metadata: ["event": "dispatch-error"]) }
        }
        guard let watcher else { return }
        do { try watcher.epoll.remove(fd, what: "received connection (watcher)") } catch {
            if error.errno != ENOENT { log.error("\(error)", metadata: ["event": "dispatch-error"]) }
        }
    }
}

extension Worker {
    /// The one hand-off step of the watcher and the event loop: sends `fd` to the dispatch
    /// socket and, if it went, removes it from both epolls and closes our copy. An epoll
    /// registration lives as long as the open file, which the receiving worker now shares:
    /// without the removals our loops would still be woken for it after close(). False if the
    /// queue refused it (EAGAIN): the connection stays ours, untouched.
    func handOff(_ fd: Int32, listener: Int, readyAt: UInt64, via dispatch: DispatchPair, watcher: Watcher) -> Bool {
        guard dispatch.send(fd, listener: listener, readyAt: readyAt) == 0 else { return false }
        release(fd, watcher: watcher, what: "handed-off connection")
        return true
    }

    /// A watched connection leaves this process (handed off, or answered by the watcher): out
    /// of both epolls, then closed. Both registrations exist: a failure here cannot happen
    /// short of a bug; say so.
    func release(_ fd: Int32, watcher: Watcher, what: String) {
        do {
            try epoll.remove(fd, what: what)
            try watcher.epoll.remove(fd, what: what + " (watcher)")
        } catch {
            log.error("\(error)", metadata: ["event": "dispatch-error"])
        }
        Sys.close(fd)
    }

    /// The event loop, before it reads an own connection that turned readable between two
    /// handlers (when the watcher is not looking): if connections already wait on the dispatch
    /// socket, this one queues behind them instead of being served first. Without it, a
    /// connection whose client answers quickly is served again and again by its worker while
    /// the handed-off ones wait: at saturation (every worker busy) the tail doubled with a client
    /// that gets the CPU promptly (bench section 6, CPU mix at c = 64: p99 200 against 100 ms).
    /// A non-empty queue means no worker is idle, so this costs nothing below saturation; with
    /// it the queue is the one order in which requests to blocking handlers are served.
    /// Returns true if the connection was handed off (the caller must not touch it again).
    func queueBehindDispatched(_ conn: Connection, events: EpollEvents) -> Bool {
        guard let dispatch, let watcher, listenerMayBlock[conn.listener], !draining,
              events.isDisjoint(with: [.readHangUp, .hangUp, .error]), events.contains(.input),
              conn.isIdle else { return false }
        let fd = conn.fd
        // Is anything queued on the receive end? (An error reads as "no": serve it here.)
        guard (try? Sys.datagramQueued(dispatch.receiveFD)) == true else { return false }
        // A stale edge (nothing to read) or EOF: the event loop deals with it.
        guard Sys.hasInput(fd) else { return false }
        // --max-queue-time: not to the tail of a queue where it would likely wait past the
        // limit: answered now (Admission.swift).
        if watcher.shedConfig != nil, watcher.shedAtArrival(fd, listener: conn.listener, now: dispatchState.lastHandlerEnd) {
            staleFDs.append(fd)
            forgetReleased(conn, because: .responseDone)
            // Counted by the watcher as it answered; the shedding episode is ours.
            noteShed(ShedDecision(reason: .arrival, waitedMicros: 0), listener: conn.listener)
            return true
        }
        guard handOff(fd, listener: conn.listener, readyAt: dispatchState.lastHandlerEnd, via: dispatch, watcher: watcher) else { return false }
        // Its events later in this batch are stale (the number may be reused by an accept).
        staleFDs.append(fd)
        forgetReleased(conn, because: .handOff)
        scoreboard.bump(slot, listener: conn.listener, Scoreboard.QueueField.handedOff)
        return true
    }
}
