import Glibc

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC: immune to wall clock changes; a vDSO call,
/// no system call). It cannot fail for CLOCK_MONOTONIC, so its result is not checked.
@inlinable @inline(__always)
package func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall clock in microseconds since the epoch (CLOCK_REALTIME, vDSO), only to compare with a
/// front proxy's `X-Request-Start` timestamp (docs/overload.md); durations use the monotonic clock.
@inlinable @inline(__always)
package func realtimeMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(max(0, ts.tv_sec)) &* 1_000_000 &+ UInt64(max(0, ts.tv_nsec)) / 1000
}

/// Wall clock in whole seconds since the epoch (time(2), vDSO): the Date header, log stamps.
@inlinable @inline(__always)
package func wallClockSeconds() -> Int {
    Int(time(nil))
}

/// CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID): what a handler
/// burnt, whatever the scheduler did meanwhile.
@inlinable @inline(__always)
package func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
