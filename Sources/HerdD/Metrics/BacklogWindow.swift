/// One listener's accept-queue history as the master samples it (every tick, 100 ms):
///
/// - `peak(now:)`: the highest queue length sampled in the last `windowSeconds` (a ring of
///   per-second peaks). It does not depend on who scrapes or how often: two Prometheus servers
///   see the same value, and a peak stays visible for a whole window.
/// - `aboveNanos`: total time the queue spent at or above the alarm threshold (a counter:
///   `rate()` of it is the fraction of time the listener was saturated).
struct BacklogWindow: Sendable {
    static let windowSeconds = 60

    private var peaks = [UInt32](repeating: 0, count: BacklogWindow.windowSeconds)
    /// The second (monotonic clock) each ring entry belongs to.
    private var secondOf = [UInt64](repeating: UInt64.max, count: BacklogWindow.windowSeconds)
    private(set) var aboveNanos: UInt64 = 0
    private var lastSampleAt: UInt64? = nil

    /// Records one sample taken at `now` (monotonic ns); `above`: at or above the alarm threshold.
    mutating func record(_ queued: UInt32, above: Bool, now: UInt64) {
        let second = now / 1_000_000_000
        let i = Int(second % UInt64(BacklogWindow.windowSeconds))
        if secondOf[i] != second {
            secondOf[i] = second
            peaks[i] = 0
        }
        peaks[i] = max(peaks[i], queued)
        // The time since the previous sample counts as saturated when this sample is: with a
        // 100 ms tick the error is at most one tick per transition.
        if above, let last = lastSampleAt, now > last { aboveNanos &+= now - last }
        lastSampleAt = now
    }

    /// Highest sample of the last `windowSeconds` seconds (including the current one).
    func peak(now: UInt64) -> UInt32 {
        let second = now / 1_000_000_000
        var best: UInt32 = 0
        for i in 0..<BacklogWindow.windowSeconds where secondOf[i] != UInt64.max {
            if second >= secondOf[i] && second - secondOf[i] < UInt64(BacklogWindow.windowSeconds) { best = max(best, peaks[i]) }
        }
        return best
    }
}
