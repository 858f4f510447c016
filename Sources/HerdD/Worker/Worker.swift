import HerdLibc
import Handlers
import HerdSys
import Logging

/// A worker's connections: the worker is their host (ConnectionHost.swift).
typealias Connection = HTTPConnection<Worker>

/// A worker process: one epoll, every listener registered with EPOLLIN | EPOLLEXCLUSIVE, a
/// non-blocking accept4 loop, and HTTP connections served by the handler of their listener.
/// One event-loop thread owns the connection table, the epoll set and the scoreboard slot
/// (heartbeat, state, counters). With blocking handlers and dispatch there is a second thread,
/// the Watcher: it reads the table and hands connections off only while the event loop sits in
/// a handler, under the watcher's mutex (Watcher.swift says how; Tests/tsan.sh checks it). It is
/// the `ConnectionHost` of its connections: what they ask of it is listed in ConnectionHost.swift;
/// they become its own by `register` (ConnectionRegistry.swift).
final class Worker: ConnectionRegistry {
    struct BoundListener {
        var fd: Int32
        var name: String
        var handler: any Handler
        /// A TCP socket (else Unix): TCP options apply to its connections.
        var isTCP = true
    }

    let slot: Int
    let masterPID: pid_t
    let config: ServerConfig
    let scoreboard: Scoreboard
    let listeners: [BoundListener]
    /// Limits, timeouts and the buffer pool, fixed for every connection (ConnectionHost.swift).
    let connectionSettings: ConnectionSettings
    var log = Logger(label: "herdd.worker") { didSet { logsDebug = log.logLevel <= .debug } }
    /// Whether `log` writes debug messages (asked once; the level is fixed for the worker's life).
    private(set) lazy var logsDebug = log.logLevel <= .debug
    let pid = Sys.processID()

    var epoll = Epoll.none
    var sigfd: Int32 = -1
    /// Connections indexed by fd (fds are small and dense: an array beats a dictionary).
    var connections: [Connection?] = []
    /// Input and output buffers of the connections with a request in progress (issue 17).
    let buffers: BufferPool
    var activeCount = 0
    var draining = false
    var requestsServed = 0
    /// Connections writing a response over several turns of the loop (see WriteBudget.swift).
    var longWrites = 0
    /// Whether this worker stepped out of the listeners' wait queues (--balance spread, or for a
    /// while after an accept4 resource error or a failed re-arm).
    var acceptPaused = false
    /// After an accept4 resource error (EMFILE...), no accepting before this time.
    var acceptResumeAt: UInt64 = 0
    let requestLimit: Int
    /// The longest epoll_wait: a second, or a third of --timeout if that is shorter, so an idle
    /// loop (or one whose async requests all await) beats well within --timeout.
    let idleWaitMillis: Int32
    var now: UInt64 = monotonicNanos()
    var dateSecond = -1
    var dateText = ""

    // Work-conserving dispatch (Dispatch.swift, Watcher.swift).
    let dispatch: DispatchPair?
    var watcher: Watcher? = nil
    /// Per listener: its handler, apart from `listeners` so a request copies out the handler
    /// only (one reference), not the whole `BoundListener` with its name.
    let listenerHandlers: [any Handler]
    /// Per listener: its handler may block (then its connections are watched for hand-off).
    let listenerMayBlock: [Bool]
    /// Per listener: its handler decides per request whether it blocks (BlockingGate.swift).
    let listenerDecidesPerRequest: [Bool]
    /// Given to such handlers in the context; opening it starts the watcher for the request.
    let blockingGate = BlockingGate()
    /// fds handed off during the current turn of the loop: events for them later in the same
    /// epoll_wait batch are stale (the fd number may even be reused by an accept) and skipped.
    var staleFDs: [Int32] = []
    /// Connections whose body producer has news (ProducedBodies.swift); served after the jobs.
    var producersWoken: [Connection] = []
    /// --balance rotate: accepts since this worker last moved to the tail of a wait queue
    /// (Worker+Connections.swift).
    var acceptsSinceRotation = 0
    /// Whether new connections have their request in at accept (EarlyRequestGuess.swift).
    var earlyRequests = EarlyRequestGuess()
    /// The access log's rate limit (Worker+Requests.swift): this second, lines logged in it,
    /// lines dropped.
    var accessLogSecond: UInt64 = 0
    var accessLogCount = 0
    var accessLogDropped = 0
    /// Where its connections came from and since when their first request waits, and the end
    /// of the turn's last handler: the queue-time clock (DispatchState.swift).
    var dispatchState = DispatchState()
    /// Async requests: the loop executor, tasks in flight, --worker-concurrency (AsyncRequests.swift).
    let asyncRequests: AsyncRequests
    /// --max-queue-time: the limit and the shedding episode (Shedding.swift).
    var shedding: WorkerShedding

    init(slot: Int, masterPID: pid_t, config: ServerConfig, scoreboard: Scoreboard, listeners: [BoundListener],
         dispatch: DispatchPair? = nil) throws {
        self.slot = slot
        self.masterPID = masterPID
        self.config = config
        self.scoreboard = scoreboard
        self.listeners = listeners
        self.dispatch = dispatch
        self.listenerHandlers = listeners.map(\.handler)
        self.listenerMayBlock = listeners.map { $0.handler.mayBlock }
        self.asyncRequests = try AsyncRequests(handlers: listeners.map(\.handler), config: config)
        self.listenerDecidesPerRequest = listeners.map { $0.handler is any DecidesBlockingPerRequest }
        self.shedding = WorkerShedding(config: config, handlers: listeners.map(\.handler))
        let pool = BufferPool()
        self.buffers = pool
        var l = HTTPLimits()
        l.maxBodyBytes = config.maxBodyBytes
        let lowat = Int32(Worker.notsentLowat(config, listeners))
        self.connectionSettings = ConnectionSettings(
            limits: l, buffers: pool,
            requestTimeouts: RequestTimeouts(headerNanos: UInt64(config.headerTimeout * 1e9), bodyNanos: UInt64(config.bodyTimeout * 1e9),
                                             bodyMinRate: UInt64(config.bodyMinRate)),
            keepAliveTimeoutNanos: UInt64(config.keepAliveTimeout * 1e9),
            // Where an async handler may stream request bodies (ProducedBodies.swift).
            bodiesMayStream: listeners.map { $0.handler is any AsyncHandler },
            notsentLowat: listeners.map { $0.isTCP ? lowat : 0 })
        if config.maxRequests > 0 {
            self.requestLimit = config.maxRequests + (config.maxRequestsJitter > 0 ? Int.random(in: 0...config.maxRequestsJitter) : 0)
        } else {
            self.requestLimit = Int.max
        }
        self.idleWaitMillis = Int32(max(10, min(1000, config.timeout * 1000 / 3)))
        log[metadataKey: "worker_id"] = "\(slot)"
        blockingGate.start = { [unowned self] fd in self.watcher?.start(busy: fd) }
    }

    /// `notsent-lowat` for this worker's TCP connections. `auto`: 16 KiB unless one of its
    /// handlers may block. The worker refills a socket only from its event loop; a handler that
    /// blocks for 50 ms stops the refills of every download the worker has in progress, and with
    /// 16 KiB queued such a download would stall for those 50 ms, where the kernel's own
    /// buffer (up to 4 MiB) keeps it going.
    static func notsentLowat(_ config: ServerConfig, _ listeners: [BoundListener]) -> Int {
        config.notsentLowat ?? (listeners.contains { $0.handler.mayBlock } ? 0 : ServerConfig.autoNotsentLowat)
    }

    func run() throws -> Never {
        // Exit with the master: the kernel sends SIGTERM when the parent dies (a graceful drain),
        // and the getppid() checks catch a master that died before prctl ran.
        try Sys.setParentDeathSignal(SIGTERM)
        if Sys.parentProcessID() != masterPID {
            log.error("master \(masterPID) is gone before the worker started", metadata: ["event": "orphan"])
            Sys.exit(1)
        }
        try Sys.ignoreSignal(SIGPIPE)
        let mallocFailed = BufferPool.configureMalloc()
        if !mallocFailed.isEmpty { log.warning("mallopt failed for \(mallocFailed.joined(separator: ", "))", metadata: ["event": "malloc-config"]) }
        // TERM/INT (drain) are read from a signalfd between events. QUIT must work even while a
        // handler runs, so it keeps a real handler that only calls _exit (async-signal-safe;
        // the default action would dump core).
        try Sys.exitOnSignal(SIGQUIT)
        // TERM/INT/QUIT were blocked at the spawn (Spawn.stopSignals): QUIT has its handler
        // now, so let it (and one that arrived meanwhile) in; TERM/INT stay blocked for the signalfd.
        try Sys.unblockSignals([SIGQUIT])
        // Signals meant for the master (`systemctl kill` without --kill-who=main reaches every
        // process of the unit): a worker must neither die (HUP, USR1, USR2) nor stop (TTIN, TTOU).
        for sig in Spawn.masterOnlySignals { try Sys.ignoreSignal(sig) }
        sigfd = try Sys.signalFD([SIGTERM, SIGINT])
        epoll = try Epoll(what: "worker")
        try epoll.add(sigfd, .input, .signals, what: "signalfd")
        // Level-triggered: a wake-up not yet read (the eventfd's counter) is reported again.
        try epoll.add(asyncRequests.executor.wakeFD, .input, .executor, what: "loop executor eventfd")
        // EPOLLEXCLUSIVE: when a connection arrives, the kernel wakes only one of the workers
        // blocked in epoll_wait on this listener instead of all of them (the thundering herd).
        // It must be set at EPOLL_CTL_ADD time and cannot be combined with EPOLL_CTL_MOD.
        // Level-triggered on purpose: if we leave connections in the queue, we are woken again.
        for l in listeners { try Sys.setNonBlocking(l.fd) }
        try watchListeners()
        if let dispatch {
            // The dispatch socket is waited on like a listener: EPOLLEXCLUSIVE, level-triggered,
            // so a connection handed over wakes one idle worker, and one left queued wakes again.
            try Sys.setNonBlocking(dispatch.sendFD)
            try Sys.setNonBlocking(dispatch.receiveFD)
            try epoll.add(dispatch.receiveFD, [.input, .exclusive], .dispatch, what: "dispatch socket")
            if listenerMayBlock.contains(true) {
                let w = try Watcher(worker: self, dispatch: dispatch)
                try w.spawn()
                watcher = w
            }
        }
        scoreboard.store(slot, .pid, UInt64(pid))
        scoreboard.store(slot, .startedAt, now)
        scoreboard.store(slot, .heartbeat, now)
        scoreboard.store(slot, .state, Scoreboard.State.idle.rawValue)
        log.debug("worker serving", metadata: ["event": "worker-ready"])

        var events = EpollReadyList(capacity: 64)
        var lastSweep = now
        // One turn per pass; what it does is decided by TurnPlan (TurnPlan.swift), from the
        // state of the moment of each step.
        while true {
            let wait = TurnPlan.wait(.init(jobsReady: asyncRequests.executor.hasLocalJobs || !producersWoken.isEmpty,
                                           acceptPaused: acceptPaused, draining: draining,
                                           idleWaitMillis: idleWaitMillis, watching: watcher != nil))
            var n = 0
            var saturated = false
            if wait.probeFirst {
                n = try epoll.wait(&events, timeoutMillis: 0)
                saturated = n > 0
            }
            if !saturated {
                n = try epoll.wait(&events, timeoutMillis: wait.timeout(untilSweep: TurnPlan.millisUntilSweep(
                    lastSweep: lastSweep, now: monotonicNanos(), draining: draining)))
            }
            beginTurn(events: n)
            var turn = TurnPlan(saturated: saturated, blockingHandlersRun: blockingHandlersRun)
            for i in 0..<n {
                let ev = events[i]
                switch turn.route(ev.tag, mayBlock: listenerMayBlock, staleFDs: staleFDs) {
                case .serve(let fd): connectionEvent(fd, ev.events)
                case .accept(let index): acceptConnections(index)
                case .receiveDispatched: receiveDispatched()
                case .readSignals: handleSignals()
                case .nothing: break
                }
            }
            takeNewWork(turn.newWork(blockingHandlersRun: blockingHandlersRun, dispatchNext: &dispatchNext))
            if turn.runsJobs(hasLocalJobs: asyncRequests.executor.hasLocalJobs) { asyncRequests.executor.runJobs(woken: turn.executorWoken) }
            if !producersWoken.isEmpty { resumeWokenProducers() }
            if TurnPlan.resumesAccepting(paused: acceptPaused, draining: draining, now: now, resumeAt: acceptResumeAt,
                                         asyncAtLimit: asyncRequests.atLimit, overShare: overShare()) { try watchListeners() }
            if TurnPlan.sweepDue(now: now, lastSweep: lastSweep, draining: draining) {
                lastSweep = now
                sweep()
            }
            if TurnPlan.mayExit(draining: draining, activeCount: activeCount, asyncHoldsDrain: asyncHoldsDrain),
               !drainDispatchQueue() { finish() }
        }
    }

    /// The start of a turn, after the wait returned `events` events.
    private func beginTurn(events n: Int) {
        #if HERDD_TEST_HOOKS
        // Test builds only: a slow turn (every turn that has events waits this long before
        // serving them), so a test can make requests arrive while the event loop is busy
        // outside a handler (the watcher's kept edges, test_dispatch.py).
        if n > 0, Worker.testTurnDelayMicros > 0 { Sys.sleep(micros: Worker.testTurnDelayMicros) }
        #endif
        now = monotonicNanos()
        dispatchState.beginTurn(at: now)
        // Hand-offs of the last turn: their fds no longer need skipping (the batch is new).
        if !staleFDs.isEmpty { staleFDs.removeAll(keepingCapacity: true) }
        // Heartbeat on every turn of the loop (at least every idleWaitMillis thanks to the timeout):
        // a worker stuck in a handler stops beating and the master kills it.
        scoreboard.store(slot, .heartbeat, now)
    }

    #if HERDD_TEST_HOOKS
    /// HERDD_TEST_TURN_DELAY_MS (test builds only): see beginTurn.
    static let testTurnDelayMicros: UInt32 = Sys.environment("HERDD_TEST_TURN_DELAY_MS").flatMap { UInt32($0) }.map { $0 * 1000 } ?? 0
    #endif

    // MARK: - Saturated turns

    /// Handlers of blocking listeners run so far (a saturated turn compares it around its events).
    var blockingHandlersRun = 0
    /// Requests of blocking listeners in a row that blocked nothing (Watcher.requestPark).
    var quietRequests = 0
    /// In a saturated turn where both a blocking listener and the dispatch socket have work:
    /// which one gives the turn's new work (they alternate, so neither queue starves).
    private var dispatchNext = true

    /// Carries out a saturated turn's one piece of new work (TurnPlan.newWork says which, and why).
    private func takeNewWork(_ work: TurnPlan.NewWork) {
        switch work {
        case .none:
            return
        case .receiveDispatched:
            receiveDispatched()
        case .acceptOne(let index):
            guard let conn = acceptConnections(index, single: true) else { return }
            // Served at once, like a connection taken from the dispatch socket: left for the
            // next turn, it would find the dispatch queue non-empty and go to its tail
            // (queueBehindDispatched), though it was taken as this turn's work.
            if !conn.closed { conn.readable() }
            // Registered with the watcher only now, if it is still open: its request is usually
            // in already, and a registration before the read would wake the watcher for it
            // (an edge it can only note); with `Connection: close` it would be for nothing.
            if !conn.closed, let watcher { watch(conn.fd, watcher) }
        }
    }

    // MARK: - Signals, timeouts, drain

    private func handleSignals() {
        // TERM (master stop, retire, or PR_SET_PDEATHSIG) and INT (terminal Ctrl-C): drain.
        while Sys.readSignal(sigfd) != nil { beginDrain(reason: .drained) }
    }

    /// Stop accepting (remove and close our copies of the listeners; the master keeps its own),
    /// close idle keep-alive connections, finish in-flight requests (and first requests of fresh
    /// connections, for a short grace) with `Connection: close`, then exit.
    func beginDrain(reason: Scoreboard.ExitReason) {
        guard !draining else { return }
        // The master sealed the sockets it bound (a graceful stop, Master/Stop.swift): nothing
        // new joins their queues, and what is queued would be reset at their close. Take it
        // all now; it is served like any connection of a draining worker (Connection: close).
        if scoreboard.header(.sweepAtDrain) != 0 {
            for i in listeners.indices { acceptConnections(i, sweep: true) }
        }
        draining = true
        asyncRequests.drainStartedAt = now
        scoreboard.store(slot, .exitReason, reason.rawValue)
        scoreboard.store(slot, .state, Scoreboard.State.draining.rawValue)
        for l in listeners {
            // Before the close: the master (and other workers) keep the listening socket open,
            // so our registration would outlive our fd. ENOENT: already out (acceptPaused).
            do { try epoll.remove(l.fd, what: "listener \(l.name)") } catch {
                if error.errno != ENOENT { log.error("\(error)", metadata: ["event": "drain"]) }
            }
            Sys.close(l.fd)
        }
        for case let c? in connections { c.drain() }
    }

    /// Every second (every 100 ms while draining): timeouts, the drain's deadline for async
    /// requests, a master that is gone, the shedding episode, memory.
    private func sweep() {
        for case let c? in connections { c.checkTimeouts(now: now, draining: draining) }
        checkSheddingEpisode()
        // Many connections went away: give their memory back (connection table, pool, heap).
        if buffers.shouldReclaim(active: activeCount) { buffers.reclaim(active: activeCount, table: &connections) }
        cancelAsyncAtDrainDeadline()
        if Sys.parentProcessID() != masterPID && !draining {
            log.warning("master is gone; draining", metadata: ["event": "orphan"])
            beginDrain(reason: .drained)
        }
    }

    private func finish() -> Never {
        scoreboard.store(slot, .state, Scoreboard.State.exited.rawValue)
        logCounters()
        Sys.exit(0)
    }

    /// At exit: totals, then one entry per listener with the herd meter counters.
    private func logCounters() {
        let snap = scoreboard.snapshot(slot)
        log.info("worker exiting", metadata: ["event": "worker-exit", "requests": "\(snap.requests)", "accepted": "\(snap.accepted)"])
        for (i, l) in listeners.enumerated() {
            let c = scoreboard.listenerCounters(slot, listener: i) // ListenerField order
            log.info("listener counters", metadata: [
                "event": "worker-listener-counters", "listener": "\(l.name)", "wakeups": "\(c[0])",
                "accepted": "\(c[1])", "empty_wakeups": "\(c[2])", "drain_eagain": "\(c[3])",
            ])
        }
    }

}
