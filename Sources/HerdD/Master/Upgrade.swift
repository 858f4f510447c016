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
    /// A new master did not take over (it failed, was stopped, or vanished at the handover): put
    /// back what its start changed on the listeners we share (its configuration's defer-accept).
    func newMasterFailed()
}

/// Removes a handover socket from the master's epoll (before it is closed, or once it reported
/// EOF: level-triggered, it would wake every turn). ENOENT: already removed.
func unregisterHandoverSocket(_ fd: Int32, from epoll: Epoll, log: Logger) {
    do { try epoll.remove(fd, what: "upgrade socket") } catch {
        if error.errno != ENOENT { log.error("upgrade: \(error)", metadata: ["event": "upgrade-socket"]) }
    }
}
