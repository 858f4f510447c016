import HerdLibc
import HerdSys

/// Starting child processes with posix_spawn: the child execs at once, so no Swift code ever
/// runs in a forked copy of our (possibly threaded) process.
enum Spawn {
    /// Children get fds 3 ..< 3 + listeners (at most Scoreboard.maxListeners) + scoreboard or
    /// upgrade pipe. The master keeps its own copies from here on, so no dup2 target ever
    /// overwrites a source not yet copied. Low enough to work with a small RLIMIT_NOFILE.
    static let firstPrivateFD: Int32 = 3 + Int32(Scoreboard.maxListeners) + 5

    /// Signals meant for the master that `systemctl kill` (without --kill-who=main) also
    /// delivers to every other process of the unit. Children start with them blocked, so one
    /// arriving before the child set up its own handling cannot kill or stop it; the child then
    /// ignores them (workers) or reads them from its signalfd (a new master).
    static let masterOnlySignals: [Int32] = [SIGHUP, SIGUSR1, SIGUSR2, SIGTTIN, SIGTTOU]
    /// Stop signals: blocked from the spawn until the child has its own handling (a worker's
    /// signalfd and QUIT handler, a new master's signalfd). Unblocked at exec, one arriving in
    /// that window would kill the child with the default action, or with the Swift runtime's
    /// crash report ("Program crashed: Terminated") instead of a drain.
    static let stopSignals: [Int32] = [SIGTERM, SIGINT, SIGQUIT]

    /// Starts `path` with `argv` and `env`. `fds` lists (source fd, number in the child): each is
    /// dup2'ed to its target, which clears FD_CLOEXEC on the copy. Every other fd of ours is
    /// CLOEXEC, so the child inherits exactly stdin/stdout/stderr plus these.
    /// Sources must not collide with targets (the master keeps its copies at firstPrivateFD+).
    static func start(path: String, argv: [String], env: [String], fds: [(Int32, Int32)]) throws -> pid_t {
        // The master blocks the signals it reads from its signalfd; a child would inherit that
        // mask (and ignored dispositions), so give it default handlers and a mask with only the
        // master-only and the stop signals blocked (Sys.spawn, HerdSys/Process.swift).
        try Sys.spawn(path: path, argv: argv, env: env, fds: fds, blockedSignals: masterOnlySignals + stopSignals)
    }

    /// The current environment as "K=V" strings, minus the given variable names.
    static func environment(removing names: Set<String>) -> [String] {
        Sys.environmentEntries().filter { s in
            let key = s.split(separator: "=", maxSplits: 1).first.map(String.init) ?? s
            return !names.contains(key)
        }
    }
}
