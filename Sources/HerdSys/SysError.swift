import CHerdSys
import Glibc

// HerdSys: the one place where herdd makes system calls (docs/design.md, "The system layer").
// Every raw call of herdd, its handlers and its HTTP module goes through a function of this
// module, one file per OS mechanism: SysError.swift (errors, the EINTR policy), Epoll.swift,
// Socket.swift (accept4, send/recv, sendfile, sockopts, SCM_RIGHTS), FileDescriptor.swift,
// Process.swift (posix_spawn, kill, waitpid, prctl), Signals.swift (signalfd), SharedMemory.swift
// (memfd, mmap), Clock.swift, ProcessTitle.swift. Tests/syscall-check.sh fails the build of the
// test suite if a Swift file anywhere else makes a raw call.
//
// The EINTR policy, once for every call:
// - retried: every call that may be interrupted by a signal handler (read, recv, send, accept4,
//   waitpid, open, ...): EINTR is never an error a caller sees;
// - never retried: close(2). Linux releases the descriptor before it reports EINTR, so a retry
//   could close a number another thread (the watcher) or a later accept has received meanwhile;
// - connect(2) is not retried either: the attempt goes on in the kernel after EINTR and a second
//   connect reports EALREADY; it is reported as the error it is;
// - epoll_wait(2) returns an empty batch on EINTR instead of waiting again: the caller's loop has
//   timers to run (heartbeat, sweeps), and a retry would restart its timeout.
// EAGAIN/EWOULDBLOCK on a non-blocking fd is a value (`IOResult.wouldBlock`, `nil`), not an error.
//
// The wrappers are `@inlinable @inline(__always)` and allocate nothing on success: a SysError
// (and its detail text, an autoclosure) is made only when a call fails, so the worker's hot path
// (accept4, recv, send, sendfile, epoll) costs what the raw calls cost. errno is read right after
// the call, in the same function, with no Swift object released in between.

/// Namespace of the system calls: `Sys.recv(...)`, `Sys.kill(...)`, one file per mechanism.
@usableFromInline package enum Sys {}

/// A failed system call: the call's name and errno, so every error message says what failed.
@usableFromInline package struct SysError: Error, CustomStringConvertible {
    @usableFromInline package let call: String
    @usableFromInline package let errno: Int32
    @usableFromInline package var detail: String? = nil

    @inlinable
    package init(_ call: String, errno: Int32 = Glibc.errno, detail: String? = nil) {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    @usableFromInline package var description: String {
        let msg = String(cString: strerror(errno))
        if let detail { return "\(call)(\(detail)): \(msg) (errno \(errno))" }
        return "\(call): \(msg) (errno \(errno))"
    }
}

/// Runs a syscall that returns -1 on error, retrying on EINTR (the policy above). `detail` is
/// evaluated only on failure.
@discardableResult
@inlinable @inline(__always)
package func sys(_ name: String, detail: @autoclosure () -> String? = nil, _ body: () -> Int32) throws(SysError) -> Int32 {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SysError(name, errno: e, detail: detail())
    }
}

/// What a read or write on a non-blocking fd did: `done(n)` bytes (0 from a read: end of file),
/// `wouldBlock` (EAGAIN: try again when epoll says so), or `failed(errno)`. EINTR is retried.
@usableFromInline package enum IOResult: Equatable, Sendable {
    case done(Int)
    case wouldBlock
    case failed(Int32)
}

/// Runs a byte-count syscall (read, recv, send, sendfile) under the EINTR policy.
@inlinable @inline(__always)
package func sysIO(_ body: () -> Int) -> IOResult {
    while true {
        let n = body()
        if n >= 0 { return .done(n) }
        let e = Glibc.errno
        if e == EINTR { continue }
        if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
        return .failed(e)
    }
}

/// A pthread-style call that returns the error number instead of setting errno.
@inlinable @inline(__always)
package func sysRC(_ name: String, detail: @autoclosure () -> String? = nil, _ rc: Int32) throws(SysError) {
    if rc != 0 { throw SysError(name, errno: rc, detail: detail()) }
}

/// The sockaddr view of a socket address struct's bytes (for bind/connect/getsockname).
@inlinable @inline(__always)
package func sockaddrPointer(_ raw: UnsafeRawBufferPointer) -> UnsafePointer<sockaddr>? {
    raw.baseAddress?.assumingMemoryBound(to: sockaddr.self)
}

@inlinable @inline(__always)
package func sockaddrPointer(_ raw: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<sockaddr>? {
    raw.baseAddress?.assumingMemoryBound(to: sockaddr.self)
}
