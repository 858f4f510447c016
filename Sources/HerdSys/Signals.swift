import CHerdSys
import Glibc

extension Sys {
    /// A sigset_t holding `signals` (sigemptyset/sigaddset may be macros: through the shim).
    @usableFromInline package static func signalSet(_ signals: [Int32]) -> sigset_t {
        var set = sigset_t()
        herd_sigset_empty(&set)
        for s in signals { herd_sigset_add(&set, s) }
        return set
    }

    /// Blocks `signals` for the calling thread (pthread_sigmask SIG_BLOCK): one that arrives is
    /// kept pending, for a signalfd to read, instead of running its default action.
    @usableFromInline package static func blockSignals(_ signals: [Int32]) throws(SysError) {
        var set = signalSet(signals)
        try sysRC("pthread_sigmask", detail: "SIG_BLOCK", pthread_sigmask(SIG_BLOCK, &set, nil))
    }

    /// Removes signals from this thread's blocked mask (a pending one is delivered at once).
    @usableFromInline package static func unblockSignals(_ signals: [Int32]) throws(SysError) {
        var set = signalSet(signals)
        try sysRC("pthread_sigmask", detail: "SIG_UNBLOCK", pthread_sigmask(SIG_UNBLOCK, &set, nil))
    }

    /// Blocks `signals` for the calling thread and returns a non-blocking CLOEXEC signalfd that
    /// delivers them (read it with `readSignal`), so the event loop stays single-threaded.
    @usableFromInline package static func signalFD(_ signals: [Int32]) throws(SysError) -> Int32 {
        try blockSignals(signals)
        var set = signalSet(signals)
        return try sys("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
    }

    /// Discards every pending instance of one blocked signal and leaves the other pending
    /// signals alone: sigtimedwait with a zero timeout dequeues it (from the thread's and the
    /// process's pending sets, the ones a signalfd reads), EAGAIN once none is left. Returns how
    /// many it discarded (a standard signal is pending at most once).
    @usableFromInline package static func discardPendingSignal(_ signal: Int32) throws(SysError) -> Int {
        var set = signalSet([signal])
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        var discarded = 0
        while true {
            let r = sigtimedwait(&set, nil, &zero)
            if r == signal { discarded += 1; continue }
            let e = errno
            if r == -1 && e == EAGAIN { return discarded }
            if r == -1 && e == EINTR { continue }
            throw SysError("sigtimedwait", errno: e)
        }
    }

    /// Reads one pending signal number from a non-blocking signalfd, nil when none is left.
    @usableFromInline package static func readSignal(_ fd: Int32) -> Int32? {
        var info = signalfd_siginfo()
        let r = withUnsafeMutableBytes(of: &info) { read(fd, $0.baseAddress, $0.count) }
        // EAGAIN: none left. A signalfd returns whole records; anything else cannot happen on
        // a valid one (and would end the caller's drain loop, which is what it should do).
        guard case .done(let n) = r, n == MemoryLayout<signalfd_siginfo>.size else { return nil }
        return Int32(bitPattern: info.ssi_signo)
    }
}
