import HerdLibc
import HerdSys

/// Per-listener histograms and counters in a slot: request latency, queue time, shed requests
/// (single writer: the slot's worker), and the copy of them the master reads.
extension Scoreboard {
    /// Records one request's latency in the listener's histogram (single writer: the worker).
    @inline(__always) func observeLatency(_ slot: Int, listener: Int, micros: UInt64) {
        Scoreboard.observe(micros, at: word(slot, listener: listener, .latencySumMicros), bounds: Scoreboard.latencyBoundsMicros)
    }

    /// One histogram observation at `base`: sum, count, then one word per bucket (a bucket
    /// holds values up to and including its bound; beyond the last bound only sum and count).
    @inline(__always) static func observe(_ micros: UInt64, at base: UnsafeMutablePointer<UInt64>, bounds: [UInt64]) {
        var b = 0
        while b < bounds.count && micros > bounds[b] { b += 1 }
        sharedStore(base, sharedLoad(base) &+ micros)
        sharedStore(base + 1, sharedLoad(base + 1) &+ 1)
        if b < bounds.count { sharedStore(base + 2 + b, sharedLoad(base + 2 + b) &+ 1) }
    }

    @inline(__always) func word(_ slot: Int, listener: Int, _ f: QueueField) -> UnsafeMutablePointer<UInt64> {
        base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.queueBase
            + listener * Scoreboard.queueWords + f.rawValue
    }

    @inline(__always) func bump(_ slot: Int, listener: Int, _ f: QueueField) {
        let p = word(slot, listener: listener, f)
        sharedStore(p, sharedLoad(p) &+ 1)
    }

    /// Records one request the worker shed when it could start it (single writer): its reason
    /// and its queue time. (Only the watcher sheds at arrival, in its own words:
    /// Scoreboard+WatcherCounts.swift.)
    @inline(__always) func observeShed(_ slot: Int, listener: Int, reason: ShedReason, micros: UInt64) {
        bump(slot, listener: listener, reason == .requestStart ? .shedRequestStart : .shedQueueTime)
        let p = word(slot, listener: listener, QueueField.shedWaitMicros)
        sharedStore(p, sharedLoad(p) &+ micros)
    }

    /// Records one request's queue time (readable/accepted -> handler start; single writer).
    @inline(__always) func observeQueue(_ slot: Int, listener: Int, micros: UInt64) {
        Scoreboard.observe(micros, at: word(slot, listener: listener, .sumMicros), bounds: Scoreboard.queueBoundsMicros)
    }

    /// Number of counter words per listener that `listenerCounters` returns: the
    /// ListenerField words, `queueCounterCount` QueueField words, then the requests shed at
    /// arrival (the watcher's word: `shedArrivalCounterIndex`).
    static let listenerCounterCount = 6 + latencyBoundsMicros.count + queueCounterCount + 1
    static let shedArrivalCounterIndex = queueCounterOffset + queueCounterCount
    static let queueCounterCount = QueueField.shedWaitMicros.rawValue + 1
    /// The counters of the `listener` line an upgrade carries (CarriedTotals), as older
    /// versions wrote it: everything before the shed words, which travel on their own line.
    static let carriedListenerCounterCount = queueCounterOffset + QueueField.received.rawValue + 1
    /// Index of the first QueueField word in `listenerCounters`.
    static let queueCounterOffset = 6 + latencyBoundsMicros.count

    /// All counters of a listener in a slot: ListenerField order (wakeups, accepted, empty
    /// wakeups, drain EAGAINs, latency sum, latency count, buckets...), then QueueField order
    /// (queue sum, count, buckets, handed off, received, shed...), then shed at arrival; the
    /// watcher's words added in.
    func listenerCounters(_ slot: Int, listener: Int) -> [UInt64] {
        let base = word(slot, listener: listener, .wakeups)
        let queue = word(slot, listener: listener, QueueField.sumMicros)
        var c = (0..<Scoreboard.queueCounterOffset).map { sharedLoad(base + $0) }
            + (0..<Scoreboard.queueCounterCount).map { sharedLoad(queue + $0) } + [0]
        addWatcherCounters(slot, listener: listener, into: &c)
        return c
    }
}
