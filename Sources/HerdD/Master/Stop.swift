import HerdLibc
import HerdSys

/// Stop: graceful (SIGTERM, drain up to --graceful-timeout) or immediate (SIGQUIT, 5 s), the
/// close of the sockets herdd bound itself, and the SIGKILL at the deadline.
extension Master {
    func beginStop(immediate: Bool) {
        let now = monotonicNanos()
        if case .immediate = stop { return }
        if stop != nil && !immediate { return }
        let timeout = immediate ? 5.0 : config.gracefulTimeout
        stop = immediate ? .immediate(deadline: now + UInt64(timeout * 1e9)) : .graceful(deadline: now + UInt64(timeout * 1e9))
        pendingSpawns.removeAll()
        // Stopping in the middle of an upgrade: the new master must not outlive us unready.
        launcher.stopNewMaster(immediate: immediate)
        if launcher.handedOver {
            // The new master is systemd's main pid now: STOPPING=1 (or any STATUS=) from us
            // would stop the service or overwrite the new master's status.
            SystemdNotify.silenced = true
        } else {
            SystemdNotify.stopping(status: immediate ? "stopping now" : "draining \(workers.count) workers")
        }
        log.info(immediate ? "stopping immediately" : "stopping gracefully", metadata: [
            "event": "stop", "mode": "\(immediate ? "immediate" : "graceful")", "workers": "\(workers.count)",
        ])
        // Not once we handed the sockets over (the new master serves them), nor as a new master
        // not yet committed (they are still the old master's, which keeps serving).
        let ownsSockets = !launcher.handedOver && !successor.awaitingCommit
        // Sealed before the workers hear of the stop: each one's drain begins with a sweep.
        if ownsSockets && !immediate { sealOwnedListeners() }
        for pid in workers.keys { signalWorker(pid, immediate ? SIGQUIT : SIGTERM) }
        if let old = successor.predecessorPID {
            log.info("waiting for the old master \(old) to finish its drain before exiting", metadata: ["event": "stop-wait-predecessor", "old_pid": "\(old)"])
        }
        // Every owned socket at once on an immediate stop; otherwise those that could not be
        // sealed (unix sockets, metrics, a failed filter). The sealed ones: closeSealedListeners.
        if ownsSockets {
            if immediate { sealedListeners = [] }
            closeOwnedListeners(except: sealedListeners)
        }
    }

    /// Graceful stop on TCP sockets herdd bound itself: a connection already in the accept queue
    /// is served, not reset. A drop-all socket filter (Sys.dropNewConnections) lets no new
    /// connection in while keeping the queue; the scoreboard's `sweepAtDrain` makes each
    /// worker take what is queued as its drain begins; `closeSealedListeners` then closes them
    /// (refusing new clients) as soon as their queues are empty.
    /// Unix sockets take no socket filter on connect, and the metrics listeners are the
    /// master's own: those are closed at once, as before.
    func sealOwnedListeners() {
        // `listeners`: the workers' (the metrics listeners are the master's own).
        for l in listeners where l.owned && l.family == .tcp && !backlog.closedFDs.contains(l.fd) {
            do {
                try Sys.dropNewConnections(l.fd, what: "listener \(l.name)")
                sealedListeners.append(l.fd)
            } catch {
                log.warning("\(error); closing it at once (connections in its queue will be reset)", metadata: ["event": "listeners-sealed"])
            }
        }
        guard !sealedListeners.isEmpty else { return }
        scoreboard.setHeader(.sweepAtDrain, 1)
        log.info("sealed the listening sockets herdd bound: no new connections; the queued ones are served", metadata: [
            "event": "listeners-sealed",
            "listeners": "\(listeners.filter { sealedListeners.contains($0.fd) }.map(\.name).joined(separator: " "))",
        ])
    }

    /// Each master tick while sealed sockets are open: close them once the workers have taken
    /// every queued connection (or no worker is left to take one).
    func closeSealedListeners() {
        guard !sealedListeners.isEmpty else { return }
        let queued = sealedListeners.contains { fd in (Sys.tcpAcceptQueue(fd)?.0 ?? 0) > 0 }
        guard !queued || workers.isEmpty else { return }
        if queued {
            log.warning("no worker left to take the connections queued on a sealed socket; they are reset", metadata: ["event": "listeners-closed"])
        }
        let fds = sealedListeners
        sealedListeners = []
        closeOwnedListeners(only: fds)
    }

    /// Close sockets herdd bound itself (workers close their copies as they begin to drain), so
    /// new connections are refused at once instead of waiting in a queue nobody will accept
    /// from, to be reset when we exit. `only`: just these fds; `except`: all owned but these.
    /// systemd's sockets (and those in its fd store) stay: systemd holds them and queues
    /// connections for the next start.
    func closeOwnedListeners(only: [Int32]? = nil, except: [Int32] = []) {
        let closing = allListeners.filter {
            $0.owned && !backlog.closedFDs.contains($0.fd) && !except.contains($0.fd) && (only?.contains($0.fd) ?? true)
        }
        guard !closing.isEmpty else { return }
        let metricsFDs = Set(metricsListeners.map(\.fd))
        if closing.contains(where: { metricsFDs.contains($0.fd) }) {
            metricsServer?.stopListening()
        }
        for l in closing {
            backlog.closedFDs.insert(l.fd)
            // Only the metrics listeners are in the master's epoll (the others: ENOENT, as are
            // metrics listeners stopListening() removed above). Before the close: a registration
            // lives as long as the socket, which workers still hold.
            do { try epoll.remove(l.fd, what: "listener \(l.name)") } catch {
                if error.errno != ENOENT { log.warning("\(error)", metadata: ["event": "listeners-closed"]) }
            }
            // shutdown(SHUT_RD) acts on the socket, not on our fd: it leaves the LISTEN state
            // at once although workers still hold copies (one may be busy in a handler for a
            // while), so connects are refused now (TCP: RST; unix: ECONNREFUSED).
            do { try Sys.shutdown(l.fd, Int32(SHUT_RD), what: "listener \(l.name)") } catch {
                log.warning("\(error)", metadata: ["event": "listeners-closed"])
            }
            Sys.close(l.fd)
        }
        log.info("closed the listening sockets herdd bound", metadata: [
            "event": "listeners-closed", "listeners": "\(closing.map(\.name).joined(separator: " "))",
        ])
    }

    /// The loop may end: stopping, no worker left, no new master of ours still running, and no
    /// predecessor still draining (waited for until our own stop deadline).
    func mayExit(now: UInt64) -> Bool {
        guard let stop, workers.isEmpty, launcher.allowsExit else { return false }
        guard successor.waitsForPredecessor else { return true }
        switch stop {
        case .graceful(let deadline), .immediate(let deadline): return now >= deadline
        }
    }

    func killAll(reason: String) {
        for (pid, w) in workers where w.killReason == nil {
            var k = w
            k.killReason = reason
            workers[pid] = k
            signalWorker(pid, SIGKILL)
            log.warning("worker \(pid) still running at stop deadline; killed", metadata: ["event": "worker-killed", "worker_pid": "\(pid)", "reason": "\(reason)"])
        }
    }
}
