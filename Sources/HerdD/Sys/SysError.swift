import CHerdSys
import Glibc

/// A failed system call: the call's name and errno, so every error message says what failed.
struct SysError: Error, CustomStringConvertible {
    let call: String
    let errno: Int32
    var detail: String? = nil

    init(_ call: String, errno: Int32 = Glibc.errno, detail: String? = nil) {
        self.call = call
        self.errno = errno
        self.detail = detail
    }

    var description: String {
        let msg = String(cString: strerror(errno))
        if let detail { return "\(call)(\(detail)): \(msg) (errno \(errno))" }
        return "\(call): \(msg) (errno \(errno))"
    }
}

/// Runs a syscall that returns -1 on error, retrying on EINTR.
@discardableResult
@inline(__always)
func sys(_ name: String, detail: String? = nil, _ body: () -> Int32) throws -> Int32 {
    while true {
        let r = body()
        if r >= 0 { return r }
        let e = Glibc.errno
        if e == EINTR { continue }
        throw SysError(name, errno: e, detail: detail)
    }
}

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC: immune to wall clock changes).
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

func setNonBlocking(_ fd: Int32) throws {
    let flags = try sys("fcntl", detail: "F_GETFL") { fcntl(fd, F_GETFL) }
    if flags & O_NONBLOCK == 0 {
        try sys("fcntl", detail: "F_SETFL") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
    }
}

/// Blocks `signals` for the calling thread so they are delivered only through a signalfd.
func makeSignalFD(_ signals: [Int32]) throws -> Int32 {
    var set = sigset_t()
    herd_sigset_empty(&set)
    for s in signals { herd_sigset_add(&set, s) }
    let rc = pthread_sigmask(SIG_BLOCK, &set, nil)
    if rc != 0 { throw SysError("pthread_sigmask", errno: rc) }
    return try sys("signalfd") { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
}

/// Removes signals from this thread's blocked mask (a pending one is delivered at once).
func unblockSignals(_ signals: [Int32]) throws {
    var set = sigset_t()
    herd_sigset_empty(&set)
    for s in signals { herd_sigset_add(&set, s) }
    let rc = pthread_sigmask(SIG_UNBLOCK, &set, nil)
    if rc != 0 { throw SysError("pthread_sigmask", errno: rc, detail: "SIG_UNBLOCK") }
}

/// Reads one pending signal number from a non-blocking signalfd, nil when none is left.
func readSignal(_ fd: Int32) -> Int32? {
    var info = signalfd_siginfo()
    let n = withUnsafeMutableBytes(of: &info) { read(fd, $0.baseAddress, $0.count) }
    guard n == MemoryLayout<signalfd_siginfo>.size else { return nil }
    return Int32(bitPattern: info.ssi_signo)
}

/// Writes the whole buffer to a blocking fd (used for stderr logging).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress else { return }
    var off = 0
    while off < bytes.count {
        let n = write(fd, base + off, bytes.count - off)
        if n < 0 { if errno == EINTR { continue }; return }
        off += n
    }
}

/// The sockaddr view of a socket address struct's bytes (for bind/connect/getsockname).
@inline(__always)
func sockaddrPointer(_ raw: UnsafeRawBufferPointer) -> UnsafePointer<sockaddr>? {
    raw.baseAddress?.assumingMemoryBound(to: sockaddr.self)
}

@inline(__always)
func sockaddrPointer(_ raw: UnsafeMutableRawBufferPointer) -> UnsafeMutablePointer<sockaddr>? {
    raw.baseAddress?.assumingMemoryBound(to: sockaddr.self)
}
