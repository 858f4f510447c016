import HerdLibc
import HerdSys
import Logging

/// SIGUSR2 hot upgrade, with one point of no return that the old master owns.
///
/// The old master starts the executable found at its original path on disk (not /proc/self/exe,
/// which after a package upgrade is the deleted old file) with the same arguments, handing over
/// every listening socket with the sd_listen_fds protocol itself: fds from 3, LISTEN_FDS,
/// LISTEN_FDNAMES, and LISTEN_PID = the child's own pid (a `/bin/sh -c 'LISTEN_PID=$$ exec ...'`
/// trampoline: posix_spawn cannot know the pid before the exec, the shell's $$ is it). One end
/// of a SOCK_SEQPACKET socketpair goes along (HERDD_UPGRADE_FD); each message is one datagram:
///
///     new -> old   "R"              my workers serve
///     old -> new   "C\n<totals>"    committed: you are the main pid now (CarriedTotals)
///     old -> new   "F\n<totals>"    final totals, sent when the old master exits
///
/// Until "C" the new master says nothing at all to the service manager (no STATUS=, READY=1,
/// MAINPID=, STOPPING=1, WATCHDOG=1): an aborted upgrade is invisible to systemd. On "R" the old
/// master, still the main pid, commits: it sends `MAINPID=<new>` + `READY=1` itself, then "C",
/// then drains and exits without STOPPING=1. EOF without "R", an exit, or --upgrade-timeout
/// before the commit: the old master kills the new one (SIGQUIT, SIGKILL 5 s later) and keeps
/// serving; the new master, never committed, stops without a word to systemd.
///
/// Stopping the new master means SIGTERM: its workers may have accepted connections already
/// (they share the listening sockets), and a graceful stop answers those; SIGKILL follows only
/// after graceful-timeout + 5 s. After a commit the new master, when it is stopped, waits for the
/// old one (its handover socket closes when the old master exits) before it exits itself: a
/// stop that waits for the main pid (`herdd stop`, the unit's ExecStop=) then waits for both.
struct UpgradeState {
    var pid: pid_t
    var fd: Int32
    var deadline: UInt64
    var killedAt: UInt64? = nil
    /// SIGKILL the stopping new master at this time (graceful-timeout + 5 s after the SIGTERM).
    var killAt: UInt64? = nil
    /// The socket closed without "R": the new master is dying; its exit status (SIGCHLD) is the
    /// better report, so wait briefly for it before stopping it ourselves.
    var pipeClosed = false
    /// "R" arrived; commit at this time (now, unless the test hook delays it).
    var commitAt: UInt64? = nil
}

/// Environment a master started by an upgrade finds (and removes, so its own children and a
/// later upgrade never see stale values).
struct UpgradeHandover {
    var fd: Int32
    var oldPID: pid_t
    var oldVersion: String
    /// The generation the new master's workers start with (the old master's + 1).
    var generation: UInt64
    /// Names of the listeners the old master bound itself and nobody else holds (closed at stop).
    var ownedListeners: Set<String>

    static func fromEnvironment() -> UpgradeHandover? {
        defer {
            for name in ["HERDD_UPGRADE_FD", "HERDD_UPGRADE_FROM", "HERDD_UPGRADE_FROM_VERSION",
                         "HERDD_UPGRADE_GENERATION", "HERDD_UPGRADE_OWNED"] { try? Sys.unsetEnvironment(name) }
        }
        guard let fdText = Sys.environment("HERDD_UPGRADE_FD"), let fd = Int32(fdText), fd > 2,
              let pidText = Sys.environment("HERDD_UPGRADE_FROM"), let pid = pid_t(pidText) else { return nil }
        // Not a word to the service manager until the old master has committed to us.
        SystemdNotify.silenced = true
        // The socket arrived without FD_CLOEXEC (dup2 of posix_spawn); our workers must not inherit it.
        do { try Sys.setCloseOnExec(fd) } catch { return nil }
        let version = Sys.environment("HERDD_UPGRADE_FROM_VERSION") ?? "?"
        let generation = Sys.environment("HERDD_UPGRADE_GENERATION").flatMap { UInt64($0) } ?? 1
        let owned = Sys.environment("HERDD_UPGRADE_OWNED").map { $0.split(separator: ":").map(String.init) } ?? []
        return UpgradeHandover(fd: fd, oldPID: pid, oldVersion: version, generation: max(1, generation), ownedListeners: Set(owned))
    }
}

// In the master's epoll, the old master's end of the handover socket is tagged
// `EpollTag.upgradePipe`, the new one's `EpollTag.upgradeHandover` (HerdSys/Epoll.swift).

/// The executable's path on disk, resolved at start-up (before a package upgrade replaces it).
func resolveExecutablePath() -> String {
    guard var path = Sys.readLink("/proc/self/exe") else { return CommandLine.arguments.first ?? "herdd" }
    if path.hasSuffix(" (deleted)") { path = String(path.dropLast(10)) }
    return path
}

/// Sends one datagram on the handover socket; false if it did not go out whole.
@discardableResult
func sendHandoverMessage(_ fd: Int32, _ text: String) -> Bool {
    let bytes = Array(text.utf8)
    let r = bytes.withUnsafeBytes { Sys.send(fd, $0.baseAddress, $0.count, flags: Int32(MSG_DONTWAIT)) }
    return r == .done(bytes.count)
}

/// Receives one datagram: .message, .empty (EAGAIN), or .closed (EOF or error).
enum HandoverRead { case message(String), empty, closed }
func readHandoverMessage(_ fd: Int32) -> HandoverRead {
    var buf = [UInt8](repeating: 0, count: 65536)
    switch buf.withUnsafeMutableBytes({ Sys.recv(fd, $0.baseAddress, $0.count, flags: Int32(MSG_DONTWAIT)) }) {
    case .done(0): return .closed
    case .done(let n): return .message(String(decoding: buf[0..<n], as: UTF8.self))
    case .wouldBlock: return .empty
    case .failed: return .closed
    }
}

/// What the upgrade needs of its master: a narrow interface instead of the master's stored
/// properties.
protocol UpgradeHost: AnyObject {
    var isStopping: Bool { get }
    /// Seconds a stopping master gives its workers (and so a new master we stop).
    var gracefulTimeout: Double { get }
    func beginStop(immediate: Bool)
    func statusLine() -> String
    /// Everything this master has counted (including what it inherited), for its successor.
    func carriedTotals() -> CarriedTotals
    /// The new master took over: serve the `metrics` listeners and report STATUS=.
    func tookOver()
    /// The old master handed over: the new master answers /metrics from now on.
    func stopServingMetrics()
}

/// Both sides of the SIGUSR2 handshake, with the state they own: the upgrade in progress and
/// the handover socket (old master), the uncommitted handover and the predecessor's totals (new
/// master). The master calls in from its loop (signals, epoll events, tick, reap).
final class Upgrader {
    weak var host: UpgradeHost?
    var log: Logger
    let scoreboard: Scoreboard
    let allListeners: [Listener]
    let executablePath: String
    /// The master's epoll (set once run() created it).
    var epoll = Epoll.none

    /// Hot upgrades this master completed.
    private(set) var upgrades: UInt64 = 0
    /// Hot upgrade in progress (old-master side).
    private(set) var upgrade: UpgradeState? = nil
    /// Handover not yet committed by the old master (new-master side; we say nothing to systemd
    /// meanwhile).
    private(set) var handover: UpgradeHandover? = nil
    /// We handed the service over (then we stop without STOPPING=1).
    private(set) var handedOver = false
    /// New-master side after the commit: the old master, until it closes the socket (its final
    /// totals come that way). Old-master side: our end of the socket to the new master.
    private var predecessor: UpgradeHandover? = nil
    private var successorFD: Int32 = -1
    /// Counters handed over by the master we replaced (added to ours in every snapshot).
    private(set) var inherited = CarriedTotals()

    init(handover: UpgradeHandover?, log: Logger, scoreboard: Scoreboard, allListeners: [Listener], executablePath: String) {
        self.handover = handover
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

    /// A stopped master that took over by an upgrade waits for the old master to finish its
    /// drain (it closes the handover socket when it exits), so that a stop which waits for the
    /// main pid waits for both generations.
    var waitsForPredecessor: Bool { predecessor != nil }
    var predecessorPID: pid_t? { predecessor?.oldPID }

    /// kill(2) of the new master (our child): it cannot fail before it is reaped; should it,
    /// the log says so.
    private func signalNewMaster(_ pid: pid_t, _ sig: Int32) {
        do { try Sys.kill(pid, sig) } catch {
            log.warning("upgrade: \(error)", metadata: ["event": "kill-failed", "new_pid": "\(pid)"])
        }
    }

    /// Removes the handover socket from the master's epoll (before it is closed, or once it
    /// reported EOF: level-triggered, it would wake every turn). ENOENT: already removed.
    private func unregister(_ fd: Int32) {
        do { try epoll.remove(fd, what: "upgrade socket") } catch {
            if error.errno != ENOENT { log.error("upgrade: \(error)", metadata: ["event": "upgrade-socket"]) }
        }
    }

    // MARK: Old-master side

    /// SIGUSR2. `generation`: ours (the new master's workers start with the next one).
    func begin(generation: UInt64, timeout upgradeTimeout: Double) {
        guard let host else { return }
        if let u = upgrade {
            log.warning("SIGUSR2 ignored: an upgrade to pid \(u.pid) is already in progress", metadata: ["event": "upgrade-refused", "new_pid": "\(u.pid)"])
            return
        }
        if host.isStopping || handover != nil {
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
            unregister(u.fd)
            upgrade = k
        }
    }

    /// The point of no return. We are still the main pid: tell the service manager that the new
    /// master is (MAINPID= and READY=1 in one message), tell the new master (it may talk to the
    /// service manager from now on), hand over the counters, then drain without STOPPING=1.
    func commit() {
        guard let host, let u = upgrade, u.killedAt == nil, !u.pipeClosed, !host.isStopping else { return }
        // Only a live new master can take over (SIGCHLD may not have been read yet).
        guard Sys.canSignal(u.pid) else { return }
        upgrades += 1
        let totals = host.carriedTotals()
        SystemdNotify.send("MAINPID=\(u.pid)\nREADY=1\nSTATUS=upgraded: new master PID \(u.pid)")
        unregister(u.fd)
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
        unregister(u.fd)
        SystemdNotify.status("upgrade failed; " + (host?.statusLine() ?? ""))
    }

    private func endUpgrade() {
        guard let u = upgrade else { return }
        unregister(u.fd)
        Sys.close(u.fd)
        upgrade = nil
    }

    // MARK: New-master side

    /// Our workers serve: tell the old master, and only it ("R"); wait for its commit.
    /// Our workers serve. True if this master waits for a commit (it told the old master).
    func reportReady() -> Bool {
        guard let h = handover else { return false }
        if sendHandoverMessage(h.fd, "R") {
            log.info("upgrade: ready, waiting for master \(h.oldPID) to hand over", metadata: ["event": "upgrade-ready-sent", "old_pid": "\(h.oldPID)"])
        } else {
            log.error("upgrade: cannot reach the old master \(h.oldPID); stopping", metadata: ["event": "upgrade-abandoned"])
            // Gracefully: our workers may have accepted connections from the shared listeners.
            host?.beginStop(immediate: false)
        }
        return true
    }

    /// A message (or EOF) from the old master on the handover socket.
    func handoverEvent() {
        guard let h = handover ?? predecessor else { return }
        while true {
            switch readHandoverMessage(h.fd) {
            case .empty:
                return
            case .message(let m):
                if m.hasPrefix("C\n") && handover != nil {
                    takeOver(h, totals: CarriedTotals.decode(m.dropFirst(2)))
                } else if m.hasPrefix("F\n") && handover == nil {
                    // The old master's final counters replace what it sent with the commit.
                    inherited = CarriedTotals.decode(m.dropFirst(2))
                }
            case .closed:
                unregister(h.fd)
                Sys.close(h.fd)
                predecessor = nil
                if handover != nil {
                    handover = nil
                    if Sys.canSignal(h.oldPID) {
                        // Alive and not committed: it gave up on us (its SIGTERM follows). Drain what
                        // our workers accepted.
                        log.error("upgrade: the old master \(h.oldPID) closed the handover without committing; stopping", metadata: ["event": "upgrade-abandoned"])
                        host?.beginStop(immediate: false)
                    } else {
                        // It died between its MAINPID= and its "C" (or before): we are all that serves.
                        log.warning("upgrade: the old master \(h.oldPID) exited without confirming the handover; taking over", metadata: ["event": "upgrade-takeover-unconfirmed"])
                        takeOver(h, totals: CarriedTotals())
                    }
                }
                return
            }
        }
    }

    /// Committed: from now on we are systemd's main pid and talk to it; the old master drains.
    private func takeOver(_ h: UpgradeHandover, totals: CarriedTotals) {
        handover = nil
        predecessor = h
        inherited = totals
        SystemdNotify.silenced = false
        do { try scoreboard.publishFile() } catch {
            log.error("cannot publish the scoreboard: \(error)", metadata: ["event": "scoreboard-publish-failed"])
        }
        host?.tookOver()
        log.notice("upgrade: now serving, replaced master \(h.oldPID) (version \(h.oldVersion)) with version \(herddVersionString)", metadata: [
            "event": "upgrade-takeover", "old_pid": "\(h.oldPID)", "old_version": "\(h.oldVersion)", "new_version": "\(herddVersionString)",
        ])
    }
}
