import HerdLibc
import Handlers
import HerdSys
import Logging

/// A worker's connections in and out: accepting from its listeners (and the sweep at a drain),
/// the balance policies that decide how much it takes, registration in its epoll and table, a
/// connection's events, its close.
extension Worker {
    // MARK: - Accepting

    /// One wakeup for listener `index`: accept one connection (default) or, with multi-accept
    /// (and --balance spread, whose rotation needs the loop's end), every queued one until
    /// EAGAIN. One per wakeup, like nginx's default: the listener is level-triggered, so a
    /// connection still queued wakes a worker again; while we serve this one, that is another
    /// idle worker, so a burst of connections spreads over the pool instead of piling onto the
    /// worker that woke first; and no accept4 per wakeup ends in EAGAIN.
    /// `single`: one accept whatever the settings (a saturated turn's one piece of new work).
    /// `sweep`: every queued connection, at the start of a drain on sealed sockets (no wakeup:
    /// not counted as one, and no balance step).
    /// Returns the connection accepted last, if any.
    @discardableResult
    func acceptConnections(_ index: Int, single: Bool = false, sweep: Bool = false) -> Connection? {
        guard index < listeners.count, !draining || sweep else { return nil }
        // The fd alone: a copy of the BoundListener (its name, its handler existential) cost
        // retains and releases per accept; the name is read only where a message needs it.
        let listenerFD = listeners[index].fd
        let drainQueue = sweep || (!single && (config.multiAccept || config.balance == .spread))
        var last: Connection? = nil
        var first = true
        var counted = false
        while first || drainQueue {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd: Int32
            let result = Sys.accept(listenerFD, &storage, &len)
            if case .failed(let e) = result, e == EINVAL {
                // The listener left the LISTEN state: the master shut it down (SHUT_RD) at the
                // start of a stop (Stop.swift), which wakes us before our own SIGTERM arrives.
                // Not a herd wakeup and not an error: stop watching listeners; the drain follows.
                let name = listeners[index].name
                log.debug("listener \(name) shut down; not accepting", metadata: ["event": "listener-shut-down", "listener": "\(name)"])
                unwatchListeners()
                acceptResumeAt = .max
                return last
            }
            // A wakeup is counted once the first accept4 says it was one (see above).
            if first && !counted && !sweep { scoreboard.bump(slot, listener: index, .wakeups); counted = true }
            switch result {
            case .connection(let c):
                fd = c
            case .wouldBlock:
                // Woken for this listener but nothing to take on the first try: another
                // process got the connection. That is the herd; the EAGAIN that ends a
                // loop which accepted something is normal and counted apart.
                if sweep { return last }
                scoreboard.bump(slot, listener: index, first ? .emptyWakeups : .drainEagain)
                if config.balance == .spread && !first && !single {
                    // Re-arm (DEL + ADD): we move to the tail of the exclusive wait queue, so
                    // the next connection wakes another idle worker instead of us (LIFO).
                    unwatchListeners()
                    do { try watchListeners() } catch {
                        // Still paused: the loop re-adds the listeners after 100 ms.
                        log.error("\(error); not accepting for 100 ms", metadata: ["event": "accept-error"])
                        acceptResumeAt = now + 100_000_000
                    }
                }
                return last
            case .failed(let e) where e == ECONNABORTED || e == EPROTO:
                continue // that connection is gone; the next one may be queued
            case .failed(let e):
                // EMFILE/ENFILE/ENOBUFS/ENOMEM: leave the connection queued for another
                // worker (or for us once connections close). The listener stays readable, so
                // a level-triggered registration would wake us again at once and spin: step
                // out of the listeners for 100 ms instead (nginx does the same).
                let name = listeners[index].name
                log.error("accept4 on \(name): \(SysError("accept4", errno: e)); not accepting for 100 ms", metadata: ["event": "accept-error", "listener": "\(name)"])
                unwatchListeners()
                acceptResumeAt = now + 100_000_000
                return last
            }
            first = false
            scoreboard.bump(slot, listener: index, .accepted)
            scoreboard.bump(slot, .accepted)
            let peer = withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0, length: Int(len)) }
            let conn = Connection(fd: fd, listener: index, peer: peer, host: self, settings: connectionSettings)
            // --max-queue-time: the wait in the kernel's accept queue counts too (docs/overload.md),
            // if the request is there: with no bytes yet, TCP_INFO counts from the handshake, and
            // a client that writes later would be shed for its own delay.
            if shedding.limitMicros != 0, let ms = Sys.tcpWaitedMillis(fd), ms > 0, Sys.hasInput(fd) {
                dispatchState.arrived(fd, readySince: now &- ms * 1_000_000)
            }
            // Served before its registration where the handler cannot block: under load the
            // request is usually in already (the client wrote it as the handshake completed),
            // and a `Connection: close` answered now never costs an EPOLL_CTL_ADD and its
            // event; if it is not in, the read says EAGAIN and EPOLL_CTL_ADD reports it later.
            // Only while the last such reads found their request (EarlyRequestGuess): a worker
            // that is not saturated accepts before the client writes.
            // (A blocking listener's connection waits for its event: the watcher's rules.)
            // Closed by then (answered, or epoll_ctl failed): still an accept for the balance.
            // Not with --balance spread: its rotation (the re-arm after the EAGAIN below) must
            // come before the answer, or the client's next connection arrives while we still
            // head the wait queue: we would take it too, or (off epoll_wait, so the kernel also
            // wakes the next waiter) race that worker for it, an empty wake-up for one of us.
            let serveFirst = !sweep && !single && !listenerMayBlock[index] && config.balance != .spread
                && earlyRequests.readFirst()
            let registered = register(conn, what: "connection", serveFirst: serveFirst)
            if serveFirst { earlyRequests.record(found: conn.closed || conn.bytesRead > 0) }
            if registered {
                // A saturated turn's accept (single) is watched after it is served (takeNewWork).
                // (Not in a sweep: the drain that follows hands nothing off.)
                if listenerMayBlock[index], !single, !sweep, let watcher { watch(fd, watcher) }
                last = conn
            }
            if sweep { continue }
            if config.balance == .spread && overShare() {
                // Leave the rest of the queue to the others: step out of every listener's
                // wait queue until we are back within our share.
                unwatchListeners()
                return last
            }
            if config.balance == .rotate {
                acceptsSinceRotation += 1
                if acceptsSinceRotation >= Worker.rotationInterval {
                    acceptsSinceRotation = 0
                    rotate(listener: index)
                }
                // The rotation orders wake-ups, not who gets a burst: while the other workers
                // are off the CPU, the one that runs takes every queued connection (wrk -c50 on
                // 2 workers: 48/2, 31/19), and its keep-alive clients then wait on one
                // overloaded loop (the p99). Above the share by more than a slack, step out as
                // spread does; back in when within the share (resumesAccepting).
                if overShare(slack: Worker.rotateShareSlack) {
                    unwatchListeners()
                    return last
                }
            }
        }
        return last
    }

    // MARK: - Balance

    static let rotationInterval = 16

    /// Re-adds one listener (DEL + ADD): EPOLLEXCLUSIVE wakes the first idle waiter of the
    /// listener's wait queue and EPOLL_CTL_ADD appends, so this worker goes to the back and the
    /// next connections wake the others first. Level-triggered: a connection queued meanwhile
    /// is reported again after the ADD.
    private func rotate(listener index: Int) {
        let fd = listeners[index].fd
        // ENOENT: not registered (accepting is paused, an event of the same batch got us here):
        // nothing to rotate; the listeners are re-added when the pause ends.
        do { try epoll.remove(fd, what: "listener \(listeners[index].name)") } catch {
            if error.errno == ENOENT { return }
            log.error("\(error)", metadata: ["event": "accept-error"]) // the ADD below says what follows
        }
        do { try epoll.add(fd, listenerEvents, .listener(index), what: "re-adding listener \(listeners[index].name)") } catch {
            // Not watching this listener any more would silently shrink the pool: re-add all
            // listeners on the next turn of the loop (acceptPaused path).
            log.error("\(error)", metadata: ["event": "accept-error"])
            unwatchListeners()
            acceptResumeAt = now + 100_000_000
        }
    }

    /// Registers every listener in our epoll. EPOLLEXCLUSIVE (default): when a connection
    /// arrives, the kernel wakes only one of the workers blocked in epoll_wait on this listener
    /// instead of all of them (the thundering herd). It must be set at EPOLL_CTL_ADD time and
    /// cannot be combined with EPOLL_CTL_MOD. Level-triggered on purpose: connections we leave in
    /// the queue wake us again. EPOLL_CTL_ADD puts us at the tail of the listener's exclusive
    /// wait queue, which --balance spread uses to rotate.
    func watchListeners() throws {
        for (i, l) in listeners.enumerated() {
            do { try epoll.add(l.fd, listenerEvents, .listener(i), what: "listener \(l.name)") } catch {
                // EEXIST: still registered from an earlier attempt that failed on a later
                // listener; anything else stops us (the caller decides).
                if error.errno != EEXIST { throw error }
            }
        }
        acceptPaused = false
    }

    /// A listener's registration: level-triggered EPOLLIN, EPOLLEXCLUSIVE unless --accept-mode shared.
    private var listenerEvents: EpollEvents {
        config.acceptMode == .exclusive ? [.input, .exclusive] : .input
    }

    func unwatchListeners() {
        for l in listeners {
            // ENOENT: not registered (a failed re-add, or already out); the goal is reached.
            do { try epoll.remove(l.fd, what: "listener \(l.name)") } catch {
                if error.errno != ENOENT { log.error("\(error)", metadata: ["event": "accept-error"]) }
            }
        }
        acceptPaused = true
    }

    /// --balance spread: do we hold more open connections than our share, ceil(total / workers)?
    /// One criterion on purpose: the worker with the fewest connections is never above it, so at
    /// least one worker always watches the listeners (with two criteria every worker could be
    /// above one of them, and connections would wait). Connection-per-request load, where nobody
    /// holds connections, is spread by the re-arm rotation instead.
    /// `slack`: how far above the share counts (--balance rotate steps out only then).
    func overShare(slack: UInt64 = 0) -> Bool {
        // Asked per accept: with at most slack + 1 connections no share can be exceeded by more
        // than the slack (the share is at least 1), so the scoreboard need not be read.
        if UInt64(activeCount) <= slack &+ 1 { return false }
        let hw = min(Int(scoreboard.header(.slotHighWater)), scoreboard.slotCount)
        var others: UInt64 = 0
        var n: UInt64 = 0
        for s in 0..<hw where s != slot {
            let st = scoreboard.state(s)
            guard st == .idle || st == .busy else { continue }
            others &+= scoreboard.load(s, .active)
            n += 1
        }
        return Worker.aboveShare(mine: UInt64(activeCount), others: others, otherWorkers: n, slack: slack)
    }

    /// --balance rotate's slack over the share (overShare): 1 keeps a 50-connection burst on 2
    /// workers within 27/23, and a worker whose count wobbles by one around the share
    /// (connection-per-request load) from stepping out and back on every accept.
    static let rotateShareSlack: UInt64 = 1

    /// Whether `mine` open connections are more than `slack` above the share, ceil(total /
    /// workers), of a pool where `otherWorkers` serving workers hold `others`. Alone: never.
    static func aboveShare(mine: UInt64, others: UInt64, otherWorkers: UInt64, slack: UInt64) -> Bool {
        guard otherWorkers > 0 else { return false }
        let n = otherWorkers + 1
        let share = (others &+ mine + n - 1) / n
        return mine > share &+ slack
    }

    func connectionEvent(_ fd: Int32, _ events: EpollEvents) {
        let i = Int(fd)
        guard i >= 0, i < connections.count, let conn = connections[i] else { return }
        if !events.isDisjoint(with: [.readHangUp, .hangUp]) { conn.peerHangUpReported = true }
        else if watcher != nil, queueBehindDispatched(conn, events: events) { return }
        if !events.isDisjoint(with: [.input, .readHangUp, .hangUp, .error]) { conn.readable() }
        if events.contains(.output), !conn.closed { conn.writable() }
    }

    // MARK: - Registration (ConnectionRegistry.swift: `register`, the one way in)

    /// Enters a new connection of ours (accepted, taken from the dispatch socket, or kept by
    /// the watcher) in the table and the counts.
    func enter(_ conn: Connection) -> Int {
        let i = Int(conn.fd)
        if i >= connections.count { connections += Array(repeating: nil, count: i - connections.count + 64) }
        connections[i] = conn
        activeCount += 1
        scoreboard.store(slot, .active, UInt64(activeCount))
        return activeCount
    }

    func connectionTag(_ fd: Int32) -> EpollTag { .connection(fd) }

    /// Called by a connection about to close its fd (or forgotten: `forgetReleased`), with the reason.
    func connectionClosed(_ conn: Connection, reason: CloseReason) {
        if dispatchState.remove(conn.fd) { unregisterReceived(conn.fd) }
        let i = Int(conn.fd)
        if i < connections.count { connections[i] = nil }
        activeCount -= 1
        scoreboard.store(slot, .active, UInt64(activeCount))
        scoreboard.bump(slot, closed: reason)
        // Asked first: Logger.debug reads the level through a copy of the handler existential,
        // once per connection (Worker.logsDebug).
        if logsDebug {
            log.debug("connection closed", metadata: ["event": "connection-closed", "reason": "\(reason.label)", "peer": "\(conn.peer)"])
        }
    }
}
