/// --max-queue-time: whether a request that arrives at a busy worker may join the dispatch
/// queue, or is answered 503 at once (docs/overload.md, "Admission"). Pure: the watcher reads
/// the queue and the clocks (`Watcher.admits`), this decides; unit-tested as is.
///
/// A request let into the queue that then waits past the limit is shed late: its client waits
/// the whole limit for a 503. So the decision is made at arrival, from an estimate of the wait,
/// and always, not only once the limit is being hit: in the sleep mix at twice its capacity,
/// the hand-offs made while the limit was not (yet, or for a moment no longer) being hit were
/// admitted whatever the queue held, and 17% of them were shed late, against 0.3-0.8% of those
/// admitted by the estimate (79% of all late sheds; docs/overload.md, "Where the late sheds came
/// from").
enum Admission {
    /// - Parameters:
    ///   - queueLength: connections waiting on the dispatch queue (nil: not known).
    ///   - serviceNanos: a worker's mean time from one blocking request's start to the next.
    ///   - workers: the workers serving the queue.
    ///   - headAgeNanos: how long the queue's oldest entry has waited (nil: the queue is empty).
    ///   - limitNanos: --max-queue-time.
    ///   - limitBeingHit: a request was shed (late or at arrival) within the last limit.
    ///
    /// Its estimated wait, the queue's length times the service time over the workers, may be
    /// at most half the limit, and a quarter while the limit is being hit. The mean hides the
    /// long requests of a mix and the workers' own keep-alive connections, which are served
    /// before the queue: the queue drains slower than the mean says, so the margin. Half
    /// otherwise, so that a burst that can be served in time still passes (CoDel's point: a
    /// short burst is not a standing queue). And whatever the length says, a queue whose
    /// oldest entry has waited half the limit is not draining in time (FIFO: a newcomer waits
    /// at least as long): refused. The queue then holds a fraction of a limit of work, enough
    /// to keep every worker busy.
    static func admits(queueLength: Int?, serviceNanos: UInt64, workers: UInt64, headAgeNanos: UInt64?,
                       limitNanos: UInt64, limitBeingHit: Bool) -> Bool {
        let budget = limitBeingHit ? limitNanos / 4 : limitNanos / 2
        if let queueLength, queueLength > 0,
           UInt64(queueLength) &* serviceNanos / max(1, workers) > budget { return false }
        if let headAgeNanos, headAgeNanos > limitNanos / 2 { return false }
        return true
    }
}
