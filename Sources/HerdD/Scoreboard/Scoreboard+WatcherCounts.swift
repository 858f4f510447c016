import HerdSys

/// The 503s of a worker's watcher thread (--max-queue-time, Worker/WatcherShedding.swift),
/// counted when they are sent, not when the worker's handler ends.
///
/// The slot's other words have one writer, the worker's event loop, which bumps them with a
/// plain load + store (no locked add on the hot path). The watcher answers while that loop is
/// inside a handler, so it cannot add to those words without losing updates. It has words of
/// its own instead, after the queue words (from `watcherBase`), written only under the
/// watcher's mutex (by the watcher thread, or by the event loop asking the watcher to answer:
/// `Watcher.shedAtArrival`): one writer at a time, ordered by the lock. The master adds them
/// to the worker's own when it reads the slot (`listenerCounters`, `snapshot`), so everything
/// downstream (metrics, status, retired workers, upgrades) sees one sum.
///
///     watcherBase + 0      503s sent (also requests and 5xx answers)
///     watcherBase + 1      connections closed after their 503 (`CloseReason.responseDone`)
///     watcherBase + 8 + 4 * listener: shed for their queue time, shed at arrival, their queue
///                          time (µs sum), unused
extension Scoreboard {
    static let watcherBase = queueBase + maxListeners * queueWords
    static let watcherListenerBase = watcherBase + 8
    static let watcherListenerWords = 4
    /// One past the last word used in a slot (ScoreboardSpawnTests checks it fits).
    static let usedSlotWords = watcherListenerBase + maxListeners * watcherListenerWords

    enum WatcherField: Int { case answered = 0, closed }
    enum WatcherListenerField: Int { case queueTime = 0, arrival, waitMicros }

    @inline(__always) func word(_ slot: Int, _ f: WatcherField) -> UnsafeMutablePointer<UInt64> {
        base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.watcherBase + f.rawValue
    }

    @inline(__always) func word(_ slot: Int, listener: Int, _ f: WatcherListenerField) -> UnsafeMutablePointer<UInt64> {
        base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.watcherListenerBase
            + listener * Scoreboard.watcherListenerWords + f.rawValue
    }

    /// Watcher, under its mutex: one 503 about to be sent (counted first, so a client that has
    /// its answer finds it in the metrics), for its queue time or at arrival.
    func countWatcherShed(_ slot: Int, listener: Int, reason: ShedReason, micros: UInt64, closed: Bool) {
        @inline(__always) func add(_ p: UnsafeMutablePointer<UInt64>, _ v: UInt64) { sharedStore(p, sharedLoad(p) &+ v) }
        add(word(slot, listener: listener, reason == .queueTime ? .queueTime : .arrival), 1)
        add(word(slot, listener: listener, WatcherListenerField.waitMicros), micros)
        add(word(slot, .answered), 1)
        if closed { add(word(slot, .closed), 1) }
    }

    /// Master: what the slot's watcher answered (requests, all of them 5xx) and closed.
    func watcherCounts(_ slot: Int) -> (answered: UInt64, closed: UInt64) {
        (sharedLoad(word(slot, .answered)), sharedLoad(word(slot, .closed)))
    }

    /// Master: a listener's watcher words folded into `listenerCounters` order (queue-time
    /// sheds and their wait into the worker's words, arrivals into the last counter).
    func addWatcherCounters(_ slot: Int, listener: Int, into c: inout [UInt64]) {
        let q = Scoreboard.queueCounterOffset
        c[q + QueueField.shedQueueTime.rawValue] &+= sharedLoad(word(slot, listener: listener, WatcherListenerField.queueTime))
        c[q + QueueField.shedWaitMicros.rawValue] &+= sharedLoad(word(slot, listener: listener, WatcherListenerField.waitMicros))
        c[Scoreboard.shedArrivalCounterIndex] &+= sharedLoad(word(slot, listener: listener, WatcherListenerField.arrival))
    }
}

extension Scoreboard.SlotSnapshot {
    /// The slot's counts with its watcher's 503s in: requests, 5xx and closes after a response.
    func addingWatcher(_ w: (answered: UInt64, closed: UInt64)) -> Scoreboard.SlotSnapshot {
        var s = self
        s.requests &+= w.answered
        s.statusClasses[4] &+= w.answered
        s.closes[CloseReason.responseDone.rawValue] &+= w.closed
        return s
    }
}
