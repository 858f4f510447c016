import CHerdSys
import Glibc
import Logging

/// SIGUSR2 hot upgrade.
///
/// Old master: starts the executable found at its original path on disk (not /proc/self/exe,
/// which after a package upgrade is the deleted old file) with the same arguments, handing over
/// every listening socket with the sd_listen_fds protocol itself: fds from 3, LISTEN_FDS,
/// LISTEN_FDNAMES, and LISTEN_PID = the child's own pid (a `/bin/sh -c 'LISTEN_PID=$$ exec ...'`
/// trampoline: posix_spawn cannot know the pid before the exec, the shell's $$ is it). The write
/// end of a pipe goes along (HERDD_UPGRADE_FD). The new master, once its workers serve, sends
/// MAINPID=<pid> + READY=1 and writes "R" on the pipe; the old master then drains and exits
/// without STOPPING=1 (it is no longer the main pid). EOF without "R", an exit, or
/// --upgrade-timeout: the old master kills the new one and keeps serving.
struct UpgradeState {
    var pid: pid_t
    var pipeFD: Int32
    var deadline: UInt64
    var killedAt: UInt64? = nil
    /// The pipe closed without "R": the new master is dying; its exit status (SIGCHLD) is the
    /// better report, so wait briefly for it before stopping it ourselves.
    var pipeClosed = false
}

/// Environment a master started by an upgrade finds (and removes, so its own children and a
/// later upgrade never see stale values).
struct UpgradeHandover {
    var pipeFD: Int32
    var oldPID: pid_t
    var oldVersion: String

    static func fromEnvironment() -> UpgradeHandover? {
        defer {
            unsetenv("HERDD_UPGRADE_FD")
            unsetenv("HERDD_UPGRADE_FROM")
            unsetenv("HERDD_UPGRADE_FROM_VERSION")
        }
        guard let fdText = getenv("HERDD_UPGRADE_FD"), let fd = Int32(String(cString: fdText)), fd > 2,
              let pidText = getenv("HERDD_UPGRADE_FROM"), let pid = pid_t(String(cString: pidText)) else { return nil }
        // The pipe arrived without FD_CLOEXEC (dup2 of posix_spawn); our workers must not inherit it.
        guard fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 else { return nil }
        let version = getenv("HERDD_UPGRADE_FROM_VERSION").map { String(cString: $0) } ?? "?"
        return UpgradeHandover(pipeFD: fd, oldPID: pid, oldVersion: version)
    }
}

/// Tag of the upgrade pipe in the master's epoll.
let upgradePipeTag: UInt64 = 3 << 32

/// The executable's path on disk, resolved at start-up (before a package upgrade replaces it).
func resolveExecutablePath() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    guard n > 0 else { return CommandLine.arguments.first ?? "herdd" }
    var path = cText(Array(buf[0..<n]))
    if path.hasSuffix(" (deleted)") { path = String(path.dropLast(10)) }
    return path
}

extension Master {
    func beginUpgrade() {
        if let u = upgrade {
            log.warning("SIGUSR2 ignored: an upgrade to pid \(u.pid) is already in progress", metadata: ["event": "upgrade-refused", "new_pid": "\(u.pid)"])
            return
        }
        if stop != nil {
            log.warning("SIGUSR2 ignored: stopping", metadata: ["event": "upgrade-refused"])
            scoreboard.publish(upgrade: .failed, newPID: 0, message: "upgrade refused: the master is stopping")
            return
        }
        do {
            var fds = [Int32](repeating: -1, count: 2)
            try sys("pipe2", detail: "upgrade") { pipe2(&fds, O_CLOEXEC | O_NONBLOCK) }
            let readEnd = fds[0]
            // Above the handed-over range, like the listeners: the dup2 to 3, 4, ... must not overwrite it first.
            let writeEnd: Int32
            do {
                writeEnd = try sys("fcntl", detail: "F_DUPFD_CLOEXEC upgrade pipe") { fcntl(fds[1], F_DUPFD_CLOEXEC, Spawn.firstPrivateFD) }
                close(fds[1])
            } catch { close(fds[0]); close(fds[1]); throw error }
            defer { close(writeEnd) }

            var handover: [(Int32, Int32)] = []
            for (i, l) in allListeners.enumerated() { handover.append((l.fd, 3 + Int32(i))) }
            let pipeTarget = 3 + Int32(allListeners.count)
            handover.append((writeEnd, pipeTarget))
            var env = Spawn.environment(removing: [
                "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_PID",
                "HERDD_UPGRADE_FD", "HERDD_UPGRADE_FROM", "HERDD_UPGRADE_FROM_VERSION",
            ])
            env += [
                "LISTEN_FDS=\(allListeners.count)",
                "LISTEN_FDNAMES=\(allListeners.map(\.name).joined(separator: ":"))",
                "HERDD_UPGRADE_FD=\(pipeTarget)", "HERDD_UPGRADE_FROM=\(getpid())",
                "HERDD_UPGRADE_FROM_VERSION=\(herddVersionString)",
            ]
            let argv = ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"", executablePath]
                + Array(CommandLine.arguments.dropFirst())
            let pid = try Spawn.start(path: "/bin/sh", argv: argv, env: env, fds: handover)
            try sys("epoll_ctl", detail: "upgrade pipe") { herd_epoll_ctl(epfd, EPOLL_CTL_ADD, readEnd, herd_epollin() | herd_epollrdhup(), upgradePipeTag) }
            upgrade = UpgradeState(pid: pid, pipeFD: readEnd, deadline: monotonicNanos() + UInt64(config.upgradeTimeout * 1e9))
            log.notice("upgrade: started \(executablePath) as pid \(pid)", metadata: [
                "event": "upgrade-start", "new_pid": "\(pid)", "old_version": "\(herddVersionString)", "path": "\(executablePath)",
            ])
            // Give systemd room for the new master's start (only matters while a job runs, e.g.
            // `herdd upgrade` as ExecReload=); the watchdog keeps being fed by this loop.
            SystemdNotify.send("EXTEND_TIMEOUT_USEC=\(UInt64((config.upgradeTimeout + 10) * 1e6))")
            SystemdNotify.status("upgrading: new master PID \(pid); " + statusLine())
        } catch {
            log.error("upgrade failed to start: \(error); still serving", metadata: ["event": "upgrade-failed"])
            scoreboard.publish(upgrade: .failed, newPID: 0, message: "upgrade failed to start: \(error)")
        }
    }

    /// The pipe became readable: "R" means the new master serves; EOF means it died.
    func upgradePipeEvent() {
        guard let u = upgrade else { return }
        var byte: UInt8 = 0
        let n = read(u.pipeFD, &byte, 1)
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
        if n == 1 && byte == UInt8(ascii: "R") {
            endUpgrade()
            upgrades += 1
            scoreboard.publish(upgrade: .ok, newPID: u.pid, message: "new master \(u.pid) is serving")
            log.notice("upgrade: new master \(u.pid) is serving; draining this one", metadata: [
                "event": "upgrade-done", "new_pid": "\(u.pid)", "old_version": "\(herddVersionString)",
            ])
            handedOver = true
            beginStop(immediate: false)
            return
        }
        var k = u
        k.pipeClosed = true
        k.deadline = min(u.deadline, monotonicNanos() + 2_000_000_000)
        _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, u.pipeFD, 0, 0)
        upgrade = k
    }

    /// Called from reap(): the new master (our child) exited.
    func upgradeChildExited(_ pid: pid_t, status: String) -> Bool {
        guard let u = upgrade, u.pid == pid else { return false }
        let alreadyReported = u.killedAt != nil
        endUpgrade()
        if alreadyReported { return true }
        log.error("upgrade failed: new master \(pid) exited (\(status)) before it was ready; still serving", metadata: [
            "event": "upgrade-failed", "new_pid": "\(pid)", "exit_status": "\(status)",
        ])
        SystemdNotify.status("upgrade failed; " + statusLine())
        scoreboard.publish(upgrade: .failed, newPID: pid, message: "new master \(pid) exited (\(status)) before it was ready")
        return true
    }

    func checkUpgradeDeadline(_ now: UInt64) {
        guard let u = upgrade else { return }
        if let killed = u.killedAt {
            if now - killed > 5_000_000_000 { kill(u.pid, SIGKILL) }
            return
        }
        if now >= u.deadline {
            abortUpgrade(u, why: u.pipeClosed ? "the new master closed the handover pipe before it was ready"
                                              : "the new master was not ready within --upgrade-timeout \(config.upgradeTimeout) s")
        }
    }

    private func abortUpgrade(_ u: UpgradeState, why: String) {
        guard u.killedAt == nil else { return }
        log.error("upgrade failed: \(why); stopping pid \(u.pid), still serving", metadata: ["event": "upgrade-failed", "new_pid": "\(u.pid)"])
        // SIGQUIT: the new master stops its workers at once and exits; SIGKILL follows in 5 s.
        kill(u.pid, SIGQUIT)
        scoreboard.publish(upgrade: .failed, newPID: u.pid, message: "upgrade failed: \(why)")
        var k = u
        k.killedAt = monotonicNanos()
        _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, u.pipeFD, 0, 0)
        upgrade = k
        SystemdNotify.status("upgrade failed; " + statusLine())
    }

    private func endUpgrade() {
        guard let u = upgrade else { return }
        _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, u.pipeFD, 0, 0)
        close(u.pipeFD)
        upgrade = nil
    }

    /// New-master side: once our workers serve, take over as systemd's main pid and release the
    /// old master.
    func completeHandover(_ h: UpgradeHandover) {
        SystemdNotify.send("MAINPID=\(getpid())\nREADY=1\nSTATUS=\(statusLine())")
        var r = UInt8(ascii: "R")
        _ = write(h.pipeFD, &r, 1)
        close(h.pipeFD)
        log.notice("upgrade: now serving, replaced master \(h.oldPID) (version \(h.oldVersion)) with version \(herddVersionString)", metadata: [
            "event": "upgrade-takeover", "old_pid": "\(h.oldPID)", "old_version": "\(h.oldVersion)", "new_version": "\(herddVersionString)",
        ])
    }
}
