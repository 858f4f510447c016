import CHerdSys
import Glibc

// The calling process itself: ids, environment, exit, signal dispositions, sleeping, malloc
// tuning. Signal numbers are in HerdLibc; signalfd and masks in Signals.swift; other processes
// in Process.swift.
extension Sys {
    @inlinable @inline(__always)
    package static func processID() -> pid_t { getpid() }

    /// The parent's pid: a worker compares it with its master's to notice it was orphaned
    /// (reparented to init or a subreaper) before PR_SET_PDEATHSIG was in place.
    @inlinable @inline(__always)
    package static func parentProcessID() -> pid_t { getppid() }

    /// exit(3): atexit handlers run and stdio is flushed.
    package static func exit(_ status: Int32) -> Never { Glibc.exit(status) }

    /// _exit(2): no atexit handlers, no stdio flush; async-signal-safe.
    package static func exitImmediately(_ status: Int32) -> Never { Glibc._exit(status) }

    /// The value of an environment variable, nil when unset.
    package static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// Removes a variable from this process's environment (and so from what children inherit).
    package static func unsetEnvironment(_ name: String) throws(SysError) {
        try sys("unsetenv", detail: name) { unsetenv(name) }
    }

    /// The whole environment as "NAME=value" strings.
    package static func environmentEntries() -> [String] {
        var out: [String] = []
        var p = environ
        while let entry = p.pointee {
            out.append(String(cString: entry))
            p += 1
        }
        return out
    }

    /// signal(2) with SIG_IGN: the signal is discarded, also one already pending (a blocked
    /// signal that arrived earlier).
    package static func ignoreSignal(_ sig: Int32) throws(SysError) {
        try setDisposition(sig, SIG_IGN, "SIG_IGN")
    }

    /// signal(2) with SIG_DFL: the default action again.
    package static func defaultSignal(_ sig: Int32) throws(SysError) {
        try setDisposition(sig, SIG_DFL, "SIG_DFL")
    }

    /// A handler that only calls _exit(0) (async-signal-safe): the signal ends the process even
    /// while the thread that would read a signalfd is busy, without the core dump of the
    /// default action of SIGQUIT.
    package static func exitOnSignal(_ sig: Int32) throws(SysError) {
        try setDisposition(sig, { _ in _exit(0) }, "_exit handler")
    }

    private static func setDisposition(_ sig: Int32, _ handler: __sighandler_t?, _ what: String) throws(SysError) {
        // SIG_ERR is (sighandler_t)-1: a function pointer, compared by its bits.
        if let old = signal(sig, handler), unsafeBitCast(old, to: Int.self) == -1 {
            throw SysError("signal", detail: "\(sig), \(what)")
        }
    }

    /// usleep(3). EINTR: not resumed, the sleep just ends early; every caller sleeps in short
    /// steps towards a deadline or a count, so an early end costs one more step.
    package static func sleep(micros: UInt32) {
        _ = usleep(micros)
    }

    /// sched_yield(2): lets another runnable thread have the CPU (cannot fail on Linux).
    package static func yieldProcessor() {
        _ = sched_yield()
    }

    /// sysconf(_SC_NPROCESSORS_ONLN): CPUs online now, nil if unknown.
    package static func onlineProcessorCount() -> Int? {
        let n = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        return n > 0 ? n : nil
    }
}

/// The glibc malloc parameters herdd sets (mallopt(3)).
package enum MallocParameter: Sendable {
    case mmapThreshold, trimThreshold, arenaMax

    var raw: Int32 {
        switch self {
        case .mmapThreshold: M_MMAP_THRESHOLD
        case .trimThreshold: M_TRIM_THRESHOLD
        case .arenaMax: M_ARENA_MAX
        }
    }
}

extension Sys {
    /// mallopt(3): true on success. It returns 1 or 0 and sets no errno, so there is no
    /// SysError to make; the caller says which parameter failed.
    package static func setMalloc(_ parameter: MallocParameter, _ value: Int32) -> Bool {
        mallopt(parameter.raw, value) == 1
    }

    /// malloc_trim(0): releases the heap's free pages (madvise MADV_DONTNEED inside the heap,
    /// sbrk at its top). It returns 1 if memory was released, 0 if none could be: no error.
    package static func trimMalloc() {
        _ = malloc_trim(0)
    }
}
