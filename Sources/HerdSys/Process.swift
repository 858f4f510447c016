import CHerdSys
import Glibc

extension Sys {
    /// posix_spawn of `path` with `argv` and `env`: the child execs at once, so no Swift code
    /// ever runs in a forked copy of our (possibly threaded) process. `fds` lists (source fd,
    /// number in the child): each is dup2'ed to its target, which clears FD_CLOEXEC on the copy.
    /// The child starts with default handlers for every signal (the parent's ignored
    /// dispositions are not inherited) and with exactly `blockedSignals` blocked (not the
    /// parent's mask: a master blocks what it reads from its signalfd).
    @usableFromInline package static func spawn(path: String, argv: [String], env: [String], fds: [(Int32, Int32)],
                              blockedSignals: [Int32]) throws(SysError) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        try sysRC("posix_spawn_file_actions_init", posix_spawn_file_actions_init(&actions))
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (from, to) in fds {
            try sysRC("posix_spawn_file_actions_adddup2", detail: "\(from)->\(to)", posix_spawn_file_actions_adddup2(&actions, from, to))
        }

        var attr = posix_spawnattr_t()
        try sysRC("posix_spawnattr_init", posix_spawnattr_init(&attr))
        defer { posix_spawnattr_destroy(&attr) }
        var mask = signalSet(blockedSignals)
        var all = signalSet((1..<32).map { Int32($0) }.filter { $0 != SIGKILL && $0 != SIGSTOP })
        try sysRC("posix_spawnattr_setsigmask", posix_spawnattr_setsigmask(&attr, &mask))
        try sysRC("posix_spawnattr_setsigdefault", posix_spawnattr_setsigdefault(&attr, &all))
        try sysRC("posix_spawnattr_setflags", posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        try sysRC("posix_spawn", detail: path, posix_spawn(&pid, path, &actions, &attr, cArgv, cEnv))
        return pid
    }

    /// kill(2).
    @usableFromInline package static func kill(_ pid: pid_t, _ signal: Int32) throws(SysError) {
        try sys("kill", detail: "pid \(pid), signal \(signal)") { Glibc.kill(pid, signal) }
    }

    /// kill(pid, 0): the process exists (EPERM: it exists but is not ours to signal).
    @usableFromInline package static func isAlive(_ pid: pid_t) -> Bool {
        Glibc.kill(pid, 0) == 0 || Glibc.errno == EPERM
    }

    /// kill(pid, 0) succeeds: the process exists and we may signal it (ESRCH, EPERM: no).
    @usableFromInline package static func canSignal(_ pid: pid_t) -> Bool {
        Glibc.kill(pid, 0) == 0
    }

    /// pidfd_open(2): an fd that becomes readable when `pid` exits. Unlike polling kill(pid, 0)
    /// it names this process, not whoever gets the number next, and it needs no parent: a
    /// master after a hot upgrade is nobody's child but PID 1's.
    @usableFromInline package static func pidfdOpen(_ pid: pid_t) throws(SysError) -> Int32 {
        try sys("pidfd_open", detail: "pid \(pid)") { herd_pidfd_open(pid) }
    }

    /// poll(2) for input on one fd: true once readable, false at the timeout. EINTR counts as
    /// "not yet" (the caller's loop has a deadline and asks again).
    @usableFromInline package static func waitReadable(_ fd: Int32, timeoutMillis: Int32) throws(SysError) -> Bool {
        let r = herd_poll_input(fd, timeoutMillis)
        if r < 0 {
            if Glibc.errno == EINTR { return false }
            throw SysError("poll", detail: "fd \(fd)")
        }
        return r > 0
    }

    /// waitpid(-1, WNOHANG): one exited child (pid, wait status), nil when none is left to reap
    /// (0: children still running; ECHILD: no children).
    @usableFromInline package static func reapChild() -> (pid: pid_t, status: Int32)? {
        var status: Int32 = 0
        while true {
            let pid = waitpid(-1, &status, WNOHANG)
            if pid > 0 { return (pid, status) }
            if pid < 0 && Glibc.errno == EINTR { continue }
            return nil
        }
    }

    /// waitpid(pid, 0): blocks until `pid` exits; returns its wait status.
    @usableFromInline package static func wait(_ pid: pid_t) throws(SysError) -> Int32 {
        var status: Int32 = 0
        try sys("waitpid", detail: "pid \(pid)") { waitpid(pid, &status, 0) }
        return status
    }

    /// prctl(PR_SET_PDEATHSIG): the kernel sends `signal` to us when our parent dies.
    @usableFromInline package static func setParentDeathSignal(_ signal: Int32) throws(SysError) {
        try sys("prctl", detail: "PR_SET_PDEATHSIG") { herd_prctl_pdeathsig(signal) }
    }

    /// prctl(PR_SET_NAME): the thread's comm (/proc/PID/comm, ps -e, top), at most 15 bytes.
    @usableFromInline package static func setThreadName(_ name: String) throws(SysError) {
        var bytes = Array(name.utf8.prefix(15).map { CChar(bitPattern: $0) })
        bytes.append(0)
        try sys("prctl", detail: "PR_SET_NAME") { bytes.withUnsafeBufferPointer { herd_prctl_set_name($0.baseAddress) } }
    }
}
