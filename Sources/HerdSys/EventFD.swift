import CHerdSys
import Glibc

extension Sys {
    /// eventfd(2), non-blocking and close-on-exec: a 64-bit counter an epoll set can wait on.
    /// Used as the wake-up of a worker's event loop by threads that hand it work (LoopExecutor):
    /// one fd, one 8-byte write to wake, one read to reset, and no pipe pair.
    @usableFromInline package static func eventFD(what: @autoclosure () -> String? = nil) throws(SysError) -> Int32 {
        try sys("eventfd", detail: what()) { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
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
}
