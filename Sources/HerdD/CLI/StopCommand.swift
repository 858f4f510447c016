import ArgumentParser
import HerdLibc
import HerdSys

/// `herdd stop`: SIGTERM to the master (graceful: it drains its workers for graceful-timeout,
/// and, after a hot upgrade, waits for the old master's drain too) and, unless --no-wait, return
/// only once the master is gone. It is the unit's ExecStop=: systemd 252 does not wait for a
/// main process that is not its own child (every master after a hot upgrade), and with
/// KillMode=mixed it would SIGKILL the cgroup right after its SIGTERM (docs/systemd-stop.md).
struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop a running master gracefully (SIGTERM) and wait until it has exited; exit 0 if none runs.",
        discussion: """
        The master drains in-flight requests for graceful-timeout, then kills what is left; it \
        exits after its workers (and, after a hot upgrade, the old master still draining). \
        Used as ExecStop= of the systemd unit ($MAINPID). Exit 1 if the master is still running \
        after --timeout seconds.
        """)

    @OptionGroup var target: ControlTarget

    @Flag(name: .long, inversion: .prefixedNo, help: "Wait until the master has exited (default).")
    var wait = true

    @Flag(name: .long, help: "Immediate stop (SIGQUIT): workers stop at once, in-flight requests are cut.")
    var now = false

    func run() throws {
        // Nothing running is success, as for `systemctl stop`: systemd also runs ExecStop= after
        // the main process has died (then $MAINPID is unset), and that must not fail the unit.
        let pid: Int32
        do { pid = try target.masterPID() } catch {
            report("stop: no master running (\(error))")
            return
        }
        // Opened before the kill, so the wait below cannot be fooled by a reused pid. ENOSYS
        // (kernel < 5.3) or a filter that refuses it: fall back to polling kill(pid, 0).
        let pidfd: Int32? = try? Sys.pidfdOpen(pid)
        defer { if let pidfd { Sys.close(pidfd) } }
        do { try Sys.kill(pid, now ? SIGQUIT : SIGTERM) } catch {
            if error.errno == ESRCH {
                report("stop: master \(pid) already gone")
                return
            }
            fail("stop: \(error)")
        }
        guard wait else { return }
        let deadline = monotonicNanos() + UInt64(max(0, target.timeout) * 1e9)
        while !StopCommand.exited(pid, pidfd: pidfd) {
            if monotonicNanos() >= deadline {
                fail("stop: master \(pid) still running after \(target.timeout) s")
            }
        }
        // Exited is not yet gone: until its parent (systemd, once the master is an orphan)
        // reaps it, the pid is a zombie that systemd still counts as the main process. Returning
        // now, systemd would process our exit first and send SIGTERM, then (not its child: no
        // wait) SIGKILL to that zombie: harmless, but logged as a kill. So wait for the reaping,
        // briefly: a parent that never reaps must not hold up the stop.
        let reapDeadline = min(deadline, monotonicNanos() + 1_000_000_000)
        while Sys.isAlive(pid) && monotonicNanos() < reapDeadline { Sys.sleep(micros: 5_000) }
        report("stopped: master \(pid)")
    }

    /// Waits up to 50 ms; true once `pid` has exited (it may still be a zombie).
    static func exited(_ pid: Int32, pidfd: Int32?) -> Bool {
        if let pidfd, let readable = try? Sys.waitReadable(pidfd, timeoutMillis: 50) { return readable }
        // kill(pid, 0) also succeeds for a zombie; systemd (or the parent) reaps it at once.
        if !Sys.isAlive(pid) { return true }
        Sys.sleep(micros: 50_000)
        return false
    }

    private func report(_ message: String) {
        var line = "\(programName) \(message)\n"
        line.withUTF8 { Sys.writeAll(2, UnsafeRawBufferPointer($0)) }
    }

    private func fail(_ message: String) -> Never {
        report(message)
        Sys.exit(1)
    }
}
