/// What one turn of a worker's event loop does, decided from plain values: no system call, no
/// clock, no connection (docs/design.md, "A turn of the worker's loop"). The loop in
/// Worker.swift takes a snapshot of its state at each step of the turn, asks this type, and
/// carries out the answer; Tests/HerdDTests/TurnPlanTests.swift covers every branch.
///
/// The steps of a turn, in order:
/// 1. `wait`: how long epoll_wait may sleep, and whether to look without sleeping first (a
///    worker with blocking handlers: events already pending make the turn *saturated*).
/// 2. `route`, per event: serve it now, skip it (stale: handed off earlier in the batch), or,
///    in a saturated turn, defer new work on blocking listeners and the dispatch socket.
/// 3. `newWork`: a saturated turn whose own connections ran no blocking handler takes one
///    piece of the deferred new work (alternating between the two queues).
/// 4. The end: run the async jobs (`runsJobs`), re-join the listeners' wait queues
///    (`resumesAccepting`), sweep (`sweepDue`), exit a finished drain (`mayExit`). Each is asked
///    with the state of its own moment: an earlier step may change what a later one reads
///    (the sweep closes timed-out connections, and may start the drain of an orphan).
struct TurnPlan: Equatable {
    // MARK: - 1. The wait

    /// What the loop knows before it waits.
    struct WaitInputs: Equatable {
        /// Jobs the loop itself queued for its executor, or body producers with news: run
        /// without sleeping first.
        var jobsReady = false
        /// Out of the listeners' wait queues (--balance spread, an accept4 resource error).
        var acceptPaused = false
        var draining = false
        /// The longest wait (a second, or a third of --timeout).
        var idleWaitMillis: Int32 = 1000
        /// Blocking handlers with dispatch: the worker has a watcher.
        var watching = false
    }

    struct Wait: Equatable {
        /// epoll_wait with timeout 0 first: events already there make the turn saturated.
        var probeFirst: Bool
        /// The wait's timeout, before the bound of the next sweep (`timeout(untilSweep:)`).
        var timeoutMillis: Int32

        /// The timeout of the sleeping wait: a wait also ends when the next sweep is due.
        /// Without this bound, events arriving just under a second apart (a 1 B/s upload) make
        /// every other turn miss the 1 s mark, and timeouts were judged 2 s apart instead of 1.
        /// `untilSweep` is read only when it matters (it reads the clock).
        func timeout(untilSweep: @autoclosure () -> Int32) -> Int32 {
            timeoutMillis > 0 ? min(timeoutMillis, untilSweep()) : 0
        }
    }

    static func wait(_ s: WaitInputs) -> Wait {
        // A worker that stepped back from accepting (--balance spread) looks again soon; a
        // draining one looks at its idle connections every 100 ms (DrainPolicy).
        let timeout: Int32 = s.jobsReady ? 0 : s.acceptPaused ? 20 : s.draining ? 100 : s.idleWaitMillis
        // A worker with blocking handlers first looks without waiting. Events already pending
        // mean it came back from work to more work (every worker may be busy): a saturated
        // turn. Only if there are none does it sleep.
        return Wait(probeFirst: s.watching, timeoutMillis: timeout)
    }

    /// How often the loop sweeps its connections (timeouts, drain, memory): every second, every
    /// 100 ms while draining.
    static func sweepInterval(draining: Bool) -> UInt64 { draining ? 100_000_000 : 1_000_000_000 }

    /// Milliseconds from `now` until the sweep after `lastSweep` is due (rounded up, at least 1,
    /// so a due sweep never spins the loop with a zero wait).
    static func millisUntilSweep(lastSweep: UInt64, now: UInt64, draining: Bool) -> Int32 {
        let due = lastSweep &+ sweepInterval(draining: draining)
        guard due > now else { return 1 }
        return Int32(clamping: (due - now + 999_999) / 1_000_000)
    }

    // MARK: - 2. The events

    /// Whether the turn's events were already pending when the worker came back from its last
    /// turn (it did not sleep, so no exclusive wake-up was spent on it).
    let saturated: Bool
    /// Handlers of blocking listeners run before the turn's events (the worker's counter).
    let blockingHandlersBefore: Int
    /// Saturated turn: the first blocking listener that had a connection queued (deferred).
    private(set) var blockingListener: Int? = nil
    /// Saturated turn: the dispatch socket had a connection queued (deferred).
    private(set) var dispatchReady = false
    /// Another thread queued jobs for the loop executor (its eventfd fired).
    private(set) var executorWoken = false

    init(saturated: Bool, blockingHandlersRun: Int) {
        self.saturated = saturated
        self.blockingHandlersBefore = blockingHandlersRun
    }

    /// What to do with one event of the batch.
    enum EventAction: Equatable {
        /// A connection's readiness: serve it.
        case serve(fd: Int32)
        /// One wakeup of a listener: accept (Worker+Connections.swift).
        case accept(listener: Int)
        /// One wakeup of the dispatch socket: take a connection (Dispatch.swift).
        case receiveDispatched
        case readSignals
        /// Nothing now: a stale fd, new work deferred to the turn's end, the executor's wake-up
        /// (its jobs run at the end), or a tag that is none of ours.
        case nothing
    }

    /// - Parameters:
    ///   - mayBlock: per listener, whether its handler may block.
    ///   - staleFDs: fds handed off (or answered by the watcher) earlier in this turn, read
    ///     afresh for every event: serving one event may run a handler whose hand-offs make
    ///     later events of the same batch stale (their fd number may even be reused already).
    mutating func route(_ tag: EpollTag?, mayBlock: [Bool], staleFDs: [Int32]) -> EventAction {
        switch tag {
        case .connection(let fd)?:
            return staleFDs.isEmpty || !staleFDs.contains(fd) ? .serve(fd: fd) : .nothing
        case .listener(let index)?:
            // A saturated turn defers new work on blocking listeners and the dispatch socket to
            // its end (`newWork`); any other turn takes it as the events come. Non-blocking
            // listeners are served as in any turn.
            guard saturated, index < mayBlock.count, mayBlock[index] else { return .accept(listener: index) }
            if blockingListener == nil { blockingListener = index }
            return .nothing
        case .dispatch?:
            guard saturated else { return .receiveDispatched }
            dispatchReady = true
            return .nothing
        case .signals?:
            return .readSignals
        case .executor?:
            executorWoken = true
            return .nothing
        default:
            return .nothing // no other registration in a worker's epoll
        }
    }

    // MARK: - 3. The saturated turn's new work

    enum NewWork: Equatable {
        case none
        /// Take one connection from the dispatch socket and serve it at once.
        case receiveDispatched
        /// Accept one connection on this blocking listener and serve it at once.
        case acceptOne(listener: Int)
    }

    /// The end of a saturated turn. The worker's own connections went first; if none of them
    /// ran a blocking handler (`blockingHandlersRun` is unchanged), it takes one piece of new
    /// work: one accept on a blocking listener or one connection from the dispatch socket. What
    /// is left stays queued (both are level-triggered) for the next turn, or for whichever
    /// worker gets there first.
    ///
    /// Why not take everything, as a woken worker does: at saturation the listener and the
    /// dispatch socket are ready on every turn. A worker that accepted and then served a
    /// connection from the dispatch queue held the accepted one while busy, and its watcher
    /// handed it off at the next handler: with `Connection: close`, nearly every request went
    /// through both queues (bench "blocking", CPU mix: about 30 µs of CPU per request, and the
    /// order of the accept queue lost).
    ///
    /// `dispatchNext` (the worker's, across turns): when both queues have work, which one gives
    /// this turn's work; they alternate, so neither starves.
    func newWork(blockingHandlersRun: Int, dispatchNext: inout Bool) -> NewWork {
        guard saturated, blockingHandlersRun == blockingHandlersBefore else { return .none }
        let both = dispatchReady && blockingListener != nil
        defer { if both { dispatchNext.toggle() } }
        if dispatchReady && (!both || dispatchNext) { return .receiveDispatched }
        if let blockingListener { return .acceptOne(listener: blockingListener) }
        return .none
    }

    // MARK: - 4. The turn's end

    /// Async requests' jobs run on the loop: those this turn's requests queued, and those other
    /// threads woke it for (a timer, a client library's I/O thread).
    func runsJobs(hasLocalJobs: Bool) -> Bool { executorWoken || hasLocalJobs }

    /// Whether to re-join the listeners' wait queues: paused, not draining, the pause after an
    /// accept4 resource error is over, async requests below --worker-concurrency, and (asked
    /// last: it reads the scoreboard) within its share of connections (--balance spread).
    static func resumesAccepting(paused: Bool, draining: Bool, now: UInt64, resumeAt: UInt64,
                                 asyncAtLimit: Bool, overShare: @autoclosure () -> Bool) -> Bool {
        paused && !draining && now >= resumeAt && !asyncAtLimit && !overShare()
    }

    static func sweepDue(now: UInt64, lastSweep: UInt64, draining: Bool) -> Bool {
        now - lastSweep >= sweepInterval(draining: draining)
    }

    /// A draining worker with no connection and no async request holding the drain may exit
    /// (after it served what is still queued on the dispatch socket: Dispatch.swift).
    static func mayExit(draining: Bool, activeCount: Int, asyncHoldsDrain: Bool) -> Bool {
        draining && activeCount == 0 && !asyncHoldsDrain
    }
}
