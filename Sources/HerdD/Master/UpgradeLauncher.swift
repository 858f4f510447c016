import HerdLibc
import HerdSys
import Logging

/// The old master's side of a SIGUSR2 hot upgrade (Upgrade.swift has the protocol): it starts
/// the new master with the listening sockets, waits for its "R", commits (the point of no
/// return) or aborts, and at its own exit sends the final totals. It owns the upgrade in
/// progress and its end of the handover socket.
final class UpgradeLauncher {
    weak var host: UpgradeHost?
    var log: Logger
    let scoreboard: Scoreboard
    let allListeners: [Listener]
    let executablePath: String
    /// The master's epoll (set once run() created it).
    var epoll = Epoll.none

    /// Hot upgrades this master completed.
    private(set) var upgrades: UInt64 = 0
    /// Hot upgrade in progress.
    private(set) var upgrade: UpgradeState? = nil
    /// We handed the service over (then we stop without STOPPING=1).
    private(set) var handedOver = false
    /// After the commit: our end of the socket to the new master (for the final totals).
    private var successorFD: Int32 = -1

    init(log: Logger, scoreboard: Scoreboard, allListeners: [Listener], executablePath: String) {
        self.log = log
        self.scoreboard = scoreboard
        self.allListeners = allListeners
        self.executablePath = executablePath
    }

    /// The master may exit once its workers are gone: no upgrade of ours still running, or the
    /// service handed over.
    var allowsExit: Bool { upgrade == nil || handedOver }

    /// Stopping in the middle of an upgrade: the new master must not outlive us unready. A
    /// graceful stop stops it gracefully (what its workers accepted is answered).
    func stopNewMaster(immediate: Bool) {
        guard let u = upgrade else { return }
        if u.killedAt == nil {
            abortUpgrade(u, why: "the master is stopping", immediate: immediate)
        } else if immediate {
            signalNewMaster(u.pid, SIGQUIT)
            var k = u
            k.killAt = min(u.killAt ?? .max, monotonicNanos() + 5_000_000_000)
            upgrade = k
        }
    }

    /// kill(2) of the new master (our child): it cannot fail before it is reaped; should it,
    /// the log says so.
    private func signalNewMaster(_ pid: pid_t, _ sig: Int32) {
        do { try Sys.kill(pid, sig) } catch {
            log.warning("upgrade: \(error)", metadata: ["event": "kill-failed", "new_pid": "\(pid)"])
        }
    }


    /// SIGUSR2. `generation`: ours (the new master's workers start with the next one).
    func begin(generation: UInt64, timeout upgradeTimeout: Double, awaitingCommit: Bool) {
        guard let host else { return }
        if let u = upgrade {
            log.warning("SIGUSR2 ignored: an upgrade to pid \(u.pid) is already in progress", metadata: ["event": "upgrade-refused", "new_pid": "\(u.pid)"])
            return
        }
        if host.isStopping || awaitingCommit {
            let why = host.isStopping ? "the master is stopping" : "this master is itself waiting for its predecessor to commit"
            log.warning("SIGUSR2 ignored: \(why)", metadata: ["event": "upgrade-refused"])
            scoreboard.publish(upgrade: .failed, newPID: 0, message: "upgrade refused: \(why)")
            return
        }
        do {
            // SOCK_SEQPACKET: both directions, message boundaries kept, EOF when the peer dies.
            let (ours, other) = try Sys.seqpacketPair(nonBlocking: false, what: "upgrade")
            // Above the handed-over range, like the listeners: the dup2 to 3, 4, ... must not overwrite it first.
            let theirs: Int32
            do { theirs = try Sys.moveAbove(other, Spawn.firstPrivateFD, what: "upgrade socket") } catch {
                Sys.close(ours)
                throw error
            }
            defer { Sys.close(theirs) }
            do { try Sys.setNonBlocking(ours) } catch { Sys.close(ours); throw error }

            var handover: [(Int32, Int32)] = []
            for (i, l) in allListeners.enumerated() { handover.append((l.fd, 3 + Int32(i))) }
            let target = 3 + Int32(allListeners.count)
            handover.append((theirs, target))
            var env = Spawn.environment(removing: [
                "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_PID",
                "HERDD_UPGRADE_FD", "HERDD_UPGRADE_FROM", "HERDD_UPGRADE_FROM_VERSION",
                "HERDD_UPGRADE_GENERATION", "HERDD_UPGRADE_OWNED",
            ])
            env += [
                "LISTEN_FDS=\(allListeners.count)",
                "LISTEN_FDNAMES=\(allListeners.map(\.name).joined(separator: ":"))",
                "HERDD_UPGRADE_FD=\(target)", "HERDD_UPGRADE_FROM=\(Sys.processID())",
                "HERDD_UPGRADE_FROM_VERSION=\(herddVersionString)",
                "HERDD_UPGRADE_GENERATION=\(generation + 1)",
                "HERDD_UPGRADE_OWNED=\(allListeners.filter(\.owned).map(\.name).joined(separator: ":"))",
            ]
            let argv = ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"", executablePath]
                + Array(CommandLine.arguments.dropFirst())
            let pid: pid_t
            do { pid = try Spawn.start(path: "/bin/sh", argv: argv, env: env, fds: handover) } catch { Sys.close(ours); throw error }
            try epoll.add(ours, [.input, .readHangUp], .upgradePipe, what: "upgrade socket")
            upgrade = UpgradeState(pid: pid, fd: ours, deadline: monotonicNanos() + UInt64(upgradeTimeout * 1e9))
            log.notice("upgrade: started \(executablePath) as pid \(pid)", metadata: [
                "event": "upgrade-start", "new_pid": "\(pid)", "old_version": "\(herddVersionString)", "path": "\(executablePath)",
            ])
            // Give systemd room for the new master's start (only matters while a job runs, e.g.
            // `herdd upgrade` as ExecReload=); the watchdog keeps being fed by this loop.
            SystemdNotify.send("EXTEND_TIMEOUT_USEC=\(UInt64((upgradeTimeout + 10) * 1e6))")
            SystemdNotify.status("upgrading: new master PID \(pid); " + host.statusLine())
        } catch {
            log.error("upgrade failed to start: \(error); still serving", metadata: ["event": "upgrade-failed"])
            scoreboard.publish(upgrade: .failed, newPID: 0, message: "upgrade failed to start: \(error)")
        }
    }

    /// The handover socket became readable: "R" means the new master serves; EOF means it died.
    func pipeEvent(timeout upgradeTimeout: Double) {
        guard let u = upgrade, u.killedAt == nil else { return }
        switch readHandoverMessage(u.fd) {
        case .empty:
            return
        case .message(let m) where m == "R":
            // Ready, but too late? The deadline is otherwise checked only once per tick.
            if monotonicNanos() >= u.deadline {
                checkDeadline(monotonicNanos(), timeout: upgradeTimeout)
                return
            }
            var k = u
            #if HERDD_TEST_HOOKS
            // Test hook (debug builds only): hold the commit back so a test can kill the new master
            // between its "R" and our commit (the handshake step that is hardest to hit by timing).
            let delay = Sys.environment("HERDD_TEST_UPGRADE_COMMIT_DELAY").flatMap { Double($0) } ?? 0
            #else
            let delay: Double = 0
            #endif
            k.commitAt = monotonicNanos() + UInt64(max(0, delay) * 1e9)
            upgrade = k
            log.info("upgrade: new master \(u.pid) reports ready", metadata: ["event": "upgrade-ready", "new_pid": "\(u.pid)"])
            if delay <= 0 { commit() }
        case .message(let m):
            log.warning("upgrade: unexpected message from the new master: \(m.prefix(40))", metadata: ["event": "upgrade-protocol"])
        case .closed:
            var k = u
            k.pipeClosed = true
            k.deadline = min(u.deadline, monotonicNanos() + 2_000_000_000)
            unregisterHandoverSocket(u.fd, from: epoll, log: log)
            upgrade = k
        }
    }

    /// The point of no return. We are still the main pid: tell the service manager that the new
    /// master is (MAINPID= and READY=1 in one message), tell the new master (it may talk to the
    /// service manager from now on), hand over the counters, then drain without STOPPING=1.
    func commit() {
        guard let host, let u = upgrade, u.killedAt == nil, !u.pipeClosed, !host.isStopping else { return }
        #if HERDD_TEST_HOOKS
        // Test hook (debug builds only): the new master dies after its "R" and before this commit,
        // its exit not reaped yet (the race this path exists for: its "R" and its EOF read at once,
        // the SIGCHLD after them), so the handover below fails.
        if Sys.environment("HERDD_TEST_UPGRADE_VANISH_AT_COMMIT") != nil { killAndAwaitExitUnreaped(u.pid) }
        #endif
        // Only a live new master can take over (SIGCHLD may not have been read yet).
        guard Sys.canSignal(u.pid) else { return }
        upgrades += 1
        let totals = host.carriedTotals()
        SystemdNotify.send("MAINPID=\(u.pid)\nREADY=1\nSTATUS=upgraded: new master PID \(u.pid)")
        unregisterHandoverSocket(u.fd, from: epoll, log: log)
        upgrade = nil
        if !sendHandoverMessage(u.fd, "C\n" + totals.encoded()) {
            // It died after its "R": the service manager follows a dead main pid now (with
            // NotifyAccess=all we can still claim it back; with main it restarts the unit).
            log.error("upgrade: new master \(u.pid) vanished at the handover; claiming the service back", metadata: [
                "event": "upgrade-failed", "new_pid": "\(u.pid)",
            ])
            SystemdNotify.send("MAINPID=\(Sys.processID())\nREADY=1\nSTATUS=upgrade failed; " + host.statusLine())
            Sys.close(u.fd)
            upgrades -= 1
            scoreboard.publish(upgrade: .failed, newPID: u.pid, message: "new master \(u.pid) exited at the handover")
            // No longer our upgrade: its exit, reaped later, is not a childExited() of ours.
            host.newMasterFailed()
            return
        }
        successorFD = u.fd
        scoreboard.publish(upgrade: .ok, newPID: u.pid, message: "new master \(u.pid) is serving")
        log.notice("upgrade: new master \(u.pid) is serving; draining this one", metadata: [
            "event": "upgrade-done", "new_pid": "\(u.pid)", "old_version": "\(herddVersionString)",
        ])
        handedOver = true
        // The new master answers /metrics from now on (with our totals in its counters).
        host.stopServingMetrics()
        host.beginStop(immediate: false)
    }

    /// At exit of a master that handed over: the final counters (its workers finished their
    /// requests meanwhile), so the new master's totals include every request.
    func sendFinalTotals() {
        guard successorFD >= 0, let host else { return }
        sendHandoverMessage(successorFD, "F\n" + host.carriedTotals().encoded())
        Sys.close(successorFD)
        successorFD = -1
    }

    /// Called from reap(): the new master (our child) exited.
    func childExited(_ pid: pid_t, status: String) -> Bool {
        guard let u = upgrade, u.pid == pid else { return false }
        let alreadyReported = u.killedAt != nil
        endUpgrade()
        scoreboard.removeUnpublished(ofMaster: pid)
        host?.newMasterFailed()
        if alreadyReported { return true }
        log.error("upgrade failed: new master \(pid) exited (\(status)) before it was ready; still serving", metadata: [
            "event": "upgrade-failed", "new_pid": "\(pid)", "exit_status": "\(status)",
        ])
        SystemdNotify.status("upgrade failed; " + (host?.statusLine() ?? ""))
        scoreboard.publish(upgrade: .failed, newPID: pid, message: "new master \(pid) exited (\(status)) before it was ready")
        return true
    }

    /// The upgrade's deadlines: abort when --upgrade-timeout passed, SIGKILL a stopping new
    /// master, commit when a held commit is due. `atTick`: called by the master's tick (not by
    /// pipeEvent for an "R" that came late).
    func checkDeadline(_ now: UInt64, timeout upgradeTimeout: Double, atTick: Bool = false) {
        guard let u = upgrade else { return }
        if u.killedAt != nil {
            if let at = u.killAt, now >= at { signalNewMaster(u.pid, SIGKILL) }
            return
        }
        #if HERDD_TEST_HOOKS
        // Test hook (debug builds only): the tick leaves a passed deadline to the new master's
        // "R" (or its EOF), so a test's "R" after --upgrade-timeout always meets the check in
        // pipeEvent (a race with the next tick otherwise: issue 24).
        if atTick, !u.pipeClosed, now >= u.deadline, Sys.environment("HERDD_TEST_UPGRADE_LATE_READY") != nil { return }
        #endif
        if now >= u.deadline {
            abortUpgrade(u, why: u.pipeClosed ? "the new master closed the handover socket before it was ready"
                                              : "the new master was not ready within --upgrade-timeout \(upgradeTimeout) s")
        } else if let at = u.commitAt, now >= at {
            commit()
        }
    }

    private func abortUpgrade(_ u: UpgradeState, why: String, immediate: Bool = false) {
        guard u.killedAt == nil else { return }
        let serving = host?.isStopping == true ? "" : ", still serving"
        log.error("upgrade failed: \(why); stopping pid \(u.pid)\(serving)", metadata: ["event": "upgrade-failed", "new_pid": "\(u.pid)"])
        // SIGTERM: the new master drains its workers (connections they accepted from the shared
        // listeners are answered) and exits, silently (it was never committed); SIGKILL follows
        // after graceful-timeout + 5 s. SIGQUIT (an immediate stop of ours): SIGKILL in 5 s.
        signalNewMaster(u.pid, immediate ? SIGQUIT : SIGTERM)
        scoreboard.publish(upgrade: .failed, newPID: u.pid, message: "upgrade failed: \(why)")
        let now = monotonicNanos()
        var k = u
        k.killedAt = now
        k.killAt = now + UInt64(((immediate ? 0 : host?.gracefulTimeout ?? 0) + 5) * 1e9)
        k.commitAt = nil
        upgrade = k
        unregisterHandoverSocket(u.fd, from: epoll, log: log)
        SystemdNotify.status("upgrade failed; " + (host?.statusLine() ?? ""))
    }

    #if HERDD_TEST_HOOKS
    /// SIGKILL to the new master, then wait (up to 5 s) until it has exited, without reaping it:
    /// its pidfd becomes readable at the exit, the zombie stays for reap().
    private func killAndAwaitExitUnreaped(_ pid: pid_t) {
        do {
            let pidfd = try Sys.pidfdOpen(pid)
            defer { Sys.close(pidfd) }
            try Sys.kill(pid, SIGKILL)
            _ = try Sys.waitReadable(pidfd, timeoutMillis: 5000)
        } catch {
            log.error("test hook HERDD_TEST_UPGRADE_VANISH_AT_COMMIT: \(error)", metadata: ["event": "test-hook"])
        }
    }
    #endif

    private func endUpgrade() {
        guard let u = upgrade else { return }
        unregisterHandoverSocket(u.fd, from: epoll, log: log)
        Sys.close(u.fd)
        upgrade = nil
    }
}
