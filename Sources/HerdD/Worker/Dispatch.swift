import CHerdSys
import Glibc
import Handlers

/// Work-conserving dispatch (README "Design"): while a worker runs a handler that may block,
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
        var pair: [Int32] = [-1, -1]
        try sys("socketpair", detail: "dispatch") {
            socketpair(AF_UNIX, herd_sock_seqpacket() | herd_sock_nonblock() | herd_sock_cloexec(), 0, &pair)
        }
        var moved: [Int32] = []
        for fd in pair {
            let high = fcntl(fd, F_DUPFD_CLOEXEC, Spawn.firstPrivateFD)
            let e = errno
            close(fd)
            if high < 0 {
                for m in moved { close(m) }
                throw SysError("fcntl", errno: e, detail: "F_DUPFD_CLOEXEC dispatch")
            }
            moved.append(high)
        }
        sendFD = moved[0]
        receiveFD = moved[1]
    }

    /// Worker side: the pair inherited at `fd` (send end) and `fd + 1` (receive end).
    init(inheritedAt fd: Int32) {
        sendFD = fd
        receiveFD = fd + 1
    }

    /// Sends `fd` (non-blocking). Returns 0 or the errno (EAGAIN: queue full).
    func send(_ fd: Int32, listener: Int, readyAt: UInt64) -> Int32 {
        var payload = herd_dispatch_payload(listener: UInt64(listener), readyAt: readyAt)
        let rc = herd_send_fd(sendFD, fd, &payload)
        return rc < 0 ? -rc : 0
    }

    enum Received {
        case connection(fd: Int32, listener: Int, readyAt: UInt64)
        case empty
        /// A datagram without a usable fd (cannot happen between our own workers; counted).
        case malformed
        case failed(errno: Int32)
    }

    func receive() -> Received {
        var fd: Int32 = -1
        var payload = herd_dispatch_payload()
        let rc = herd_recv_fd(receiveFD, &fd, &payload)
        if rc == 0 { return .empty }
        if rc < 0 { return .failed(errno: -rc) }
        guard fd >= 0 else { return .malformed }
        return .connection(fd: fd, listener: Int(truncatingIfNeeded: payload.listener), readyAt: payload.readyAt)
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
                    close(fd)
                    return true
                }
                var storage = sockaddr_storage()
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                let rc = withUnsafeMutableBytes(of: &storage) { getpeername(fd, sockaddrPointer($0), &len) }
                // ENOTCONN: the client is already gone; the connection reads EOF and closes.
                let peer = rc == 0 ? withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0, length: Int(len)) } : PeerAddress(text: "unknown")
                scoreboard.bump(slot, listener: index, Scoreboard.QueueField.received)
                adopt(fd: fd, listener: index, peer: peer, readyAt: readyAt)
                return true
            }
        }
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
        watcher.stop(into: &staleFDs)
        guard staleFDs.count > first else { return }
        for fd in staleFDs[first...] {
            let i = Int(fd)
            guard i < connections.count, let conn = connections[i] else { continue }
            conn.handedOff()
            scoreboard.bump(slot, listener: conn.listener, Scoreboard.QueueField.handedOff)
        }
    }

    /// Adopts a connection taken from the dispatch socket and serves the request that made it
    /// readable at once, before registering it: a connection taken but left for the next turn
    /// could meet a blocking handler of ours first and be handed off again, to the tail of the
    /// queue, though it was its oldest entry. Taking and serving are one step, so the dispatch
    /// queue stays first in, first out.
    func adopt(fd: Int32, listener index: Int, peer: PeerAddress, readyAt: UInt64) {
        let conn = Connection(fd: fd, listener: index, peer: peer, host: self)
        let i = Int(fd)
        if i >= connections.count { connections += Array(repeating: nil, count: i - connections.count + 64) }
        connections[i] = conn
        activeCount += 1
        scoreboard.store(slot, .active, UInt64(activeCount))
        conn.queuedSince = readyAt
        conn.received = true
        conn.readable()
        guard !conn.closed else { return }
        // Edge-triggered like an accepted connection. EPOLL_CTL_ADD reports what is ready now
        // (bytes that came meanwhile, room for output still waiting), so nothing is missed
        // between the read above and the registration.
        let events = herd_epollin() | herd_epollout() | herd_epollrdhup() | herd_epollet()
        if herd_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, UInt64(fd)) < 0 {
            log.error("\(SysError("epoll_ctl", detail: "dispatched connection"))", metadata: ["event": "dispatch-error"])
            conn.close()
            return
        }
        if listenerMayBlock[index], let watcher, !watcher.watch(fd) {
            log.warning("\(SysError("epoll_ctl", detail: "watcher")); connection not dispatched", metadata: ["event": "dispatch-error"])
        }
    }
}

extension Worker {
    /// Before a connection taken from the dispatch socket is closed: its sender may still hold
    /// the file for a moment (it closes its copy right after sending), and an epoll registration
    /// lives as long as the file, not the fd: remove ours, or a later connection on the same fd
    /// number would get the old one's events.
    func unregisterReceived(_ fd: Int32) {
        _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0)
        if let watcher { _ = herd_epoll_ctl(watcher.epfd, EPOLL_CTL_DEL, fd, 0, 0) }
    }
}

extension Worker {
    /// The event loop, before it reads an own connection that turned readable between two
    /// handlers (when the watcher is not looking): if connections already wait on the dispatch
    /// socket, this one queues behind them instead of being served first. Without it, a
    /// connection whose client answers quickly is served again and again by its worker while
    /// the handed-off ones wait: at saturation (every worker busy) the tail doubled with a client
    /// that gets the CPU promptly (bench section 6, CPU mix at c = 64: p99 200 against 100 ms).
    /// A non-empty queue means no worker is idle, so this costs nothing below saturation; with
    /// it the queue is the one order in which requests to blocking handlers are served.
    /// Returns true if the connection was handed off (the caller must not touch it again).
    func queueBehindDispatched(_ conn: Connection, events: UInt32) -> Bool {
        guard let dispatch, let watcher, listenerMayBlock[conn.listener], !draining,
              events & (herd_epollrdhup() | herd_epollhup() | herd_epollerr()) == 0,
              events & herd_epollin() != 0, conn.canHandOff else { return false }
        let fd = conn.fd
        // SIOCINQ on the receive end: is anything queued? (An error reads as "no": serve it here.)
        guard herd_datagram_queued(dispatch.receiveFD) == 1 else { return false }
        // A stale edge (nothing to read) or EOF: the event loop deals with it.
        guard herd_has_input(fd) == 1 else { return false }
        guard dispatch.send(fd, listener: conn.listener, readyAt: turnClock) == 0 else { return false }
        // As in Watcher.consider: the registrations live as long as the file, which the
        // receiver now shares, so remove both before our close.
        if herd_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0) < 0 {
            log.warning("\(SysError("epoll_ctl", detail: "DEL handed-off connection"))", metadata: ["event": "dispatch-error"])
        }
        if herd_epoll_ctl(watcher.epfd, EPOLL_CTL_DEL, fd, 0, 0) < 0 {
            log.warning("\(SysError("epoll_ctl", detail: "DEL handed-off connection (watcher)"))", metadata: ["event": "dispatch-error"])
        }
        close(fd)
        // Its events later in this batch are stale (the number may be reused by an accept).
        staleFDs.append(fd)
        conn.handedOff()
        scoreboard.bump(slot, listener: conn.listener, Scoreboard.QueueField.handedOff)
        return true
    }
}
