import ArgumentParser
import HerdLibc
import HerdSys

/// `herdd reload` and `herdd upgrade`: signal a running master and wait for the outcome, so
/// they can serve as ExecReload= and fail loudly. They read the master's scoreboard (a memfd,
/// reopened read-only through /proc/PID/fd) where the master publishes each reload's and
/// upgrade's result with a sequence number.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Reload a running master (SIGHUP) and wait until the new generation serves; non-zero exit with the reason if it fails.")

    @OptionGroup var target: ControlTarget

    func run() throws {
        try target.signalAndWait(signal: SIGHUP, sequence: .reloadSeq, result: .reloadResult, what: "reload") { sb in
            "reloaded: generation \(sb.header(.generation))"
        }
    }
}

struct UpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Hot-upgrade a running master (SIGUSR2) and wait until the new master serves; non-zero exit with the reason if it fails.")

    @OptionGroup var target: ControlTarget

    func run() throws {
        let published = target.publishedMaster() != nil
        try target.signalAndWait(signal: SIGUSR2, sequence: .upgradeSeq, result: .upgradeResult, what: "upgrade") { sb in
            let newPID = Int32(truncatingIfNeeded: sb.header(.upgradeNewPID))
            // The old master reports success when it commits; the new master publishes its
            // scoreboard in the runtime directory when it receives the commit, a moment later.
            // Return when it has, so a `herdd reload` right after finds the new master.
            if published && !target.waitForPublished(newPID) {
                return "upgraded: new master pid \(newPID) (it has not published its scoreboard in \(target.directory) yet)"
            }
            return "upgraded: new master pid \(newPID)"
        }
    }
}

/// Which master to signal: --pid, else the main pid of --unit (systemctl show), else $MAINPID
/// (systemd sets it for ExecReload=), else the master that published its scoreboard in the
/// runtime directory ($RUNTIME_DIRECTORY, else /run/herdd: `RuntimeDirectory=herdd`).
struct ControlTarget: ParsableArguments {
    @Option(name: .long, help: "PID of the master (default: --unit's main pid, $MAINPID, or the master published in the runtime directory).")
    var pid: Int32?

    @Option(name: .long, help: "systemd unit whose main pid is the master, e.g. herdd.")
    var unit: String?

    @Option(name: .customLong("runtime-directory"), help: "Directory where the master publishes its scoreboard (default: $RUNTIME_DIRECTORY, else /run/PROGRAM, e.g. /run/herdd).")
    var runtimeDirectory: String?

    @Option(name: .long, help: "Seconds to wait for the outcome (default 90).")
    var timeout: Double = 90

    var directory: String {
        if let runtimeDirectory { return runtimeDirectory }
        return Sys.environment("RUNTIME_DIRECTORY").flatMap { $0.split(separator: ":").first.map(String.init) } ?? "/run/\(ProgramName.current)"
    }

    func masterPID() throws -> Int32 {
        if let pid { return pid }
        if let unit { return try mainPID(ofUnit: unit) }
        if let env = Sys.environment("MAINPID"), let p = Int32(env), p > 0 { return p }
        let path = "\(directory)/\(Scoreboard.fileName)"
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY | O_CLOEXEC) } catch {
            throw ValidationError("no \(ProgramName.current) master found: \(error); give --pid PID or --unit UNIT")
        }
        defer { Sys.close(fd) }
        let sb: Scoreboard
        do { sb = try Scoreboard(attaching: fd, readOnly: true) } catch {
            throw ValidationError("no \(ProgramName.current) master found: \(path): \(error)")
        }
        let p = Int32(truncatingIfNeeded: sb.header(.masterPID))
        // Alive (EPERM: alive but not ours to signal; kill() will say so).
        guard p > 0, Sys.isAlive(p) else {
            throw ValidationError("no \(ProgramName.current) master found: \(path) names pid \(p), which is not running")
        }
        return p
    }

    /// The master pid named by the scoreboard published in the runtime directory, if any.
    func publishedMaster() -> Int32? {
        Scoreboard.masterPID(publishedAt: "\(directory)/\(Scoreboard.fileName)")
    }

    /// Waits (up to --timeout) until the runtime directory's scoreboard names `pid`.
    func waitForPublished(_ pid: Int32) -> Bool {
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while publishedMaster() != pid {
            if monotonicNanos() > deadline { return false }
            Sys.sleep(micros: 20_000)
        }
        return true
    }

    /// `systemctl show --property=MainPID --value UNIT` (0: the unit is not running).
    private func mainPID(ofUnit unit: String) throws -> Int32 {
        let (readEnd, writeEnd) = try Sys.pipe(what: "systemctl")
        defer { Sys.close(readEnd) }
        let pid: pid_t
        do {
            pid = try Spawn.start(path: "/bin/sh", argv: ["/bin/sh", "-c", "exec systemctl show --property=MainPID --value -- \"$0\"", unit],
                                  env: Spawn.environment(removing: []), fds: [(writeEnd, 1)])
        } catch { Sys.close(writeEnd); throw error }
        Sys.close(writeEnd)
        var out: [UInt8] = []
        // A read error leaves `out` short: the parse below then reports what systemctl said.
        do { _ = try Sys.readToEnd(readEnd, into: &out, limit: 4096) } catch {}
        let status = try Sys.wait(pid)
        let text = String(decoding: out.filter { $0 != UInt8(ascii: "\n") && $0 != UInt8(ascii: " ") }, as: UTF8.self)
        guard describeWaitStatus(status) == "exit 0", let p = Int32(text) else {
            throw ValidationError("systemctl show \(unit) failed (\(describeWaitStatus(status))): '\(text)'")
        }
        guard p > 0 else { throw ValidationError("unit \(unit) has no main process (is it running?)") }
        return p
    }

    func signalAndWait(signal sig: Int32, sequence: Scoreboard.HeaderField, result: Scoreboard.HeaderField, what: String,
                       success: (Scoreboard) -> String) throws {
        let pid = try masterPID()
        let sb: Scoreboard
        do { sb = try openScoreboard(of: pid, directory: directory) } catch {
            fail("\(what): \(error)")
        }
        let before = sb.header(sequence)
        do { try Sys.kill(pid, sig) } catch { fail("\(what): \(error)") }
        let deadline = monotonicNanos() + UInt64(timeout * 1e9)
        while sb.header(sequence) == before {
            if monotonicNanos() > deadline { fail("\(what): no outcome within \(timeout) s (see the journal of pid \(pid))") }
            Sys.sleep(micros: 50_000)
        }
        if sb.header(result) == Scoreboard.Outcome.ok.rawValue {
            print(success(sb))
        } else {
            fail("\(what) failed: \(sb.message)")
        }
    }

    private func fail(_ message: String) -> Never {
        var line = "herdd \(message)\n"
        line.withUTF8 { Sys.writeAll(2, UnsafeRawBufferPointer($0)) }
        Sys.exit(1)
    }
}

/// The scoreboard of master `pid`: the memfd among its open files (/proc/PID/fd), or, where that
/// is hidden (systemd sandboxing), the copy it published in $RUNTIME_DIRECTORY. Mapped read-only.
func openScoreboard(of pid: Int32, directory dir: String) throws -> Scoreboard {
    do { return try openScoreboardThroughProc(pid) } catch let procError {
        let path = "\(dir)/\(Scoreboard.fileName)"
        let fd: Int32
        do { fd = try Sys.open(path, O_RDONLY | O_CLOEXEC) } catch {
            throw SysError("open", errno: error.errno, detail: "\(path) (and \(procError))")
        }
        defer { Sys.close(fd) }
        let sb = try Scoreboard(attaching: fd, readOnly: true)
        guard sb.header(.masterPID) == UInt64(pid) else {
            throw SysError("open", errno: ESRCH, detail: "\(path) belongs to master \(sb.header(.masterPID)), not \(pid)")
        }
        return sb
    }
}

private func openScoreboardThroughProc(_ pid: Int32) throws -> Scoreboard {
    let dir = "/proc/\(pid)/fd"
    let names: [String]
    do { names = try Sys.directoryEntries(dir) } catch {
        throw SysError(error.call, errno: error.errno, detail: "\(dir) (is \(pid) a herdd master you may inspect?)")
    }
    for name in names {
        guard !name.hasPrefix(".") else { continue }
        guard let target = Sys.readLink("\(dir)/\(name)") else { continue }
        // The memfd, or the file published in the runtime directory (the magic is checked on map).
        guard target.hasPrefix("/memfd:herdd-scoreboard") || target.hasSuffix("/" + Scoreboard.fileName) else { continue }
        let fd = try Sys.open("\(dir)/\(name)", O_RDONLY | O_CLOEXEC)
        defer { Sys.close(fd) } // the mapping outlives the fd (and the master)
        return try Scoreboard(attaching: fd, readOnly: true)
    }
    throw SysError("readdir", errno: ENOENT, detail: "no herdd scoreboard among the files of pid \(pid); is it a herdd master?")
}
