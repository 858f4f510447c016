import HerdLibc
import HerdSys
import Logging

/// The master's children that exited (SIGCHLD): workers (respawned unless stopping or
/// retired), the new master of an upgrade, and what their exit means for the pool.
extension Master {

    func reap() {
        while true {
            guard case let (pid, status)? = Sys.reapChild() else { break }
            // The new master of an upgrade that failed (the launcher puts our socket options back).
            if launcher.childExited(pid, status: describeWaitStatus(status)) { continue }
            guard let w = workers.removeValue(forKey: pid) else { continue }
            let now = monotonicNanos()
            let snap = scoreboard.snapshot(w.slot)
            retired.accepted &+= snap.accepted
            retired.requests &+= snap.requests
            for i in 0..<5 { retired.statusClasses[i] &+= snap.statusClasses[i] }
            retired.bytesOut &+= snap.bytesOut
            retired.dispatchWakeups &+= snap.dispatchWakeups
            retired.dispatchEmptyWakeups &+= snap.dispatchEmptyWakeups
            for i in retired.async.indices { retired.async[i] &+= snap.async[i] }
            for (r, n) in snap.closes.enumerated() { retired.closes[r] &+= n }
            // Connections still open when the worker died (killed, crashed; a drained worker
            // has none): the kernel closed them with the process.
            retired.closes[CloseReason.workerExit.rawValue] &+= snap.active
            for i in retired.listeners.indices {
                let c = scoreboard.listenerCounters(w.slot, listener: i)
                for k in c.indices { retired.listeners[i][k] &+= c[k] }
            }
            scoreboard.store(w.slot, .state, Scoreboard.State.free.rawValue)

            let how = describeWaitStatus(status)
            let reason: String
            if let k = w.killReason { reason = k }
            else if let r = w.retireReason { reason = r }
            else if snap.exitReason == Scoreboard.ExitReason.maxRequests.rawValue { reason = "max-requests" }
            else if stop != nil { reason = "stop" }
            else { reason = "crash" }
            if reason != "stop" { restarts[reason, default: 0] += 1 }
            let level: Logger.Level = (reason == "crash" || reason == "timeout") ? .error : .info
            log.log(level: level, "worker \(pid) exited (\(how)), reason \(reason)", metadata: [
                "event": "worker-exited", "worker_pid": "\(pid)", "worker_id": "\(w.slot)", "generation": "\(w.generation)",
                "reason": "\(reason)", "exit_status": "\(how)", "requests": "\(snap.requests)",
                // Connections the kernel closed with it (0 after a drain): the requests a kill
                // may have cut, for an operator (and the chaos test) to count.
                "open_connections": "\(snap.active)",
            ])
            guard stop == nil else { continue }
            // A worker that leaves because we asked (reload, TTOU) is not replaced here: the pool
            // balancer decides. Otherwise it is respawned into its slot, with a backoff when it
            // died right after it started, so a crash loop does not spin.
            if w.retireReason != nil { continue }
            if w.generation < generation { continue }
            let delay = respawn.delayAfterExit(slot: w.slot, crashed: reason == "crash", spawnedAt: w.spawnedAt, now: now)
            if respawn.isCrashLoop(wanted: wanted, serving: currentReady()) {
                log.critical("every worker dies right after it starts (\(RespawnPolicy.crashLoopThreshold) times in a row); giving up", metadata: ["event": "crash-loop"])
                SystemdNotify.status("crash loop: workers die at start")
                exitCode = 1
                beginStop(immediate: true)
                return
            }
            pendingSpawns[w.slot] = now + delay
            if delay > 0 {
                log.warning("respawning worker slot \(w.slot) in \(format1(Double(delay) / 1e9)) s", metadata: ["event": "respawn-backoff", "worker_id": "\(w.slot)"])
            }
        }
    }
}
