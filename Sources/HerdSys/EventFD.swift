import CHerdSys
import Glibc

extension Sys {
    /// eventfd(2), non-blocking and close-on-exec: a 64-bit counter an epoll set can wait on.
    /// Used as the wake-up of a worker's event loop by threads that hand it work (LoopExecutor):
    /// one fd, one 8-byte write to wake, one read to reset, and no pipe pair.
    /// `blocking`: a read blocks while the counter is 0 (`waitEventFD`): where a thread parks
    /// (the dispatch watcher, Watcher.swift).
    @usableFromInline package static func eventFD(blocking: Bool = false, what: @autoclosure () -> String? = nil) throws(SysError) -> Int32 {
        let flags = blocking ? EFD_CLOEXEC : EFD_NONBLOCK | EFD_CLOEXEC
        return try sys("eventfd", detail: what()) { eventfd(0, Int32(flags)) }
    }

    /// Adds 1 to an eventfd's counter (wakes an epoll waiting on it). Fails only if the counter
    /// would overflow (EAGAIN after 2^64-2 writes without a read) or the fd is bad: either way
    /// the fd is already readable, so the result carries no news and is not reported.
    @inlinable @inline(__always)
    package static func signalEventFD(_ fd: Int32) {
        var one: UInt64 = 1
        _ = sysIO { withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) } }
    }

    /// Resets an eventfd's counter to 0 (reads it); false if it was already 0 (EAGAIN).
    @inlinable @inline(__always) @discardableResult
    package static func drainEventFD(_ fd: Int32) -> Bool {
        var value: UInt64 = 0
        let r = sysIO { withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) } }
        return r == .done(8)
    }

    /// Blocks until a blocking eventfd's counter is not 0, then resets it to 0 (EINTR retried).
    package static func waitEventFD(_ fd: Int32, what: @autoclosure () -> String? = nil) throws(SysError) {
        var value: UInt64 = 0
        switch sysIO({ withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) } }) {
        case .done(8): return
        case .failed(let e): throw SysError("read", errno: e, detail: what())
        // A non-blocking fd (EAGAIN) or a short read: not the fd this is for.
        case .wouldBlock, .done: throw SysError("read", errno: EAGAIN, detail: what())
        }
    }
}
