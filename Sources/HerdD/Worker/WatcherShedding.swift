import HerdHTTP
import HerdLibc
import HerdSys

/// --max-queue-time while every worker is inside a blocking handler (docs/overload.md, "Who
/// answers while every worker is blocked"). The worker sheds a late request when it could
/// start it; with blocking handlers that can be a whole handler time late, and new requests
/// keep queueing behind. So the busy worker's watcher thread, which already looks at the
/// worker's idle connections while the handler runs, also answers:
///
/// - every tick (`activeTickMillis`) while its worker is in a blocking handler, the head of the
///   dispatch queue while it is over the limit (a recvmsg MSG_PEEK of the payload tells its age
///   without taking it), and new connections from the accept queue (one a tick to the dispatch
///   queue, where their age shows; all of them while the limit is being hit);
/// - new requests at arrival: its worker's connections that turn readable, those the event
///   loop would put behind the queue, and the connections it accepts. Each joins the dispatch
///   queue if it would likely be served within the limit (`admits`, Admission.swift), else it
///   is answered 503 at once, not after waiting out the limit. The estimate is stricter while
///   the limit is being hit (`overloaded`: any worker shed a request within the last limit, or
///   the dispatch queue stayed non-empty since; a scoreboard header word all of them share).
///
/// The watcher writes a canned 503 after reading the request bytes that are there (so close()
/// sends FIN, not RST, and the client reads its answer), parses nothing but the request line's
/// method and target (HEAD, and the debug handler's `/health`, which is never shed), and
/// closes. Each 503 is counted as it is sent, in scoreboard words of the watcher's own
/// (Scoreboard+WatcherCounts.swift: the worker's words have one writer, its event loop). The
/// rest of what it did (accepts, hand-offs, the episode's log lines) goes into a
/// `WatcherShedReport` that the event loop applies after the handler (`applyWatcherReport`).
/// A connection it accepted before its request came is held until it comes
/// (WatcherHeld.swift); a health check joins the dispatch queue, or failing that is kept for
/// the event loop to register after the handler.
struct WatcherShedConfig {
    let limitNanos: UInt64
    /// (index, fd) of the listeners whose handler may block and is not a health check.
    let acceptListeners: [(index: Int, fd: Int32)]
    /// Per listener: the debug handler (its `/health` is never shed).
    let debugListener: [Bool]
    /// Workers serving the queue (--workers), and the size of one queue entry in the send
    /// end's unsent bytes (nil: the queue length is not known; only the head's age is used).
    let workers: UInt64
    let entryBytes: Int?

    /// The watcher's epoll_wait timeout while its worker is in a blocking handler: how late a
    /// 503 may be on top of scheduling. 2 ms: 500 wake-ups a second, only with the option on.
    static let activeTickMillis: Int32 = 2
    /// ... and while it is not (the watcher learns of a handler start at its next wake-up:
    /// starting it costs the event loop no wake-up, see Watcher).
    static let idleTickMillis: Int32 = 20
    /// At most this many connections answered, queued or accepted per tick (bounded time under
    /// the mutex: the event loop's stop() waits for it).
    static let tickBudget = 64

    init?(worker: Worker) {
        let limit = worker.shedding.limitMicros
        guard limit != 0 else { return nil }
        limitNanos = limit * 1000
        acceptListeners = worker.listeners.indices
            .filter { worker.listenerMayBlock[$0] && !worker.shedding.healthListener[$0] }
            .map { ($0, worker.listeners[$0].fd) }
        debugListener = worker.shedding.debugListener
        workers = UInt64(max(1, worker.config.workers))
        entryBytes = DispatchPair.measureEntryBytes()
    }
}

/// What the watcher did during one handler, for the event loop (counted after the handler).
struct WatcherShedReport {
    /// Requests answered 503 (already counted): listener, reason and queue time (µs), for the
    /// shedding episode's log lines.
    var shed: [(listener: Int, reason: ShedReason, waitedMicros: UInt64)] = []
    /// Our own connections answered 503 and closed (the event loop forgets them).
    var shedOwn: [Int32] = []
    /// Listener of each connection accepted by the watcher, and of those it put on the queue.
    var accepted: [Int] = []
    var queued: [Int] = []
    /// Listener of each connection the watcher took from the dispatch queue.
    var received: [Int] = []
    /// Connections taken (accepted, or from the queue: `received`) that could not be queued
    /// nor answered.
    var kept: [(fd: Int32, listener: Int, readyAt: UInt64, received: Bool)] = []
    /// Connections taken that turned out closed by their client before an answer.
    var gone = 0

    var isEmpty: Bool { shed.isEmpty && shedOwn.isEmpty && accepted.isEmpty && received.isEmpty && kept.isEmpty && gone == 0 }
}

/// The outcome of answering one connection: answered 503; not answered, a health check
/// (`keep`) or no request bytes yet (`early`); closed by its client (`gone`).
enum WatcherAnswer { case answered, keep, early, gone }

extension Watcher {
    /// Whether the limit is being hit: a request was shed for its queue time, by any worker,
    /// within the last limit, or the dispatch queue stayed non-empty since
    /// (`Scoreboard.HeaderField.overloadSeenAt`). The queue keeps the state on while clients
    /// told to come back later (Retry-After) are away: without it the state would end between
    /// their waves, and each wave would queue and be shed late.
    func overloaded(now: UInt64, _ cfg: WatcherShedConfig) -> Bool {
        let last = worker.scoreboard.header(.overloadSeenAt)
        // Another CPU's clock read may be a little ahead of ours: that is recent too.
        return last != 0 && (now < last || now - last <= cfg.limitNanos)
    }

    /// A request shed (late, or at arrival), or the queue still not empty while overloaded.
    private func markOverloadSeen(_ now: UInt64) { worker.scoreboard.setHeader(.overloadSeenAt, now) }

    /// The epoll_wait timeout: none without --max-queue-time; a tick while our worker was in a
    /// blocking handler at our last look or the limit is being hit (then the worker's next
    /// handler must not wait for a long tick to be seen), a long one otherwise.
    func tickMillis(wasActive: Bool) -> Int32 {
        guard let cfg = shedConfig else { return -1 }
        return wasActive || overloaded(now: monotonicNanos(), cfg) ? WatcherShedConfig.activeTickMillis : WatcherShedConfig.idleTickMillis
    }

    /// Under mutex, active: one tick of shedding (see the type's comment).
    func shedTick(now: UInt64, _ cfg: WatcherShedConfig) {
        guard !worker.draining else { return }
        var budget = WatcherShedConfig.tickBudget
        // 1. The queue's oldest entries while over the limit. FIFO: the first one within the
        // limit ends the pass.
        while budget > 0, let head = Sys.peekDispatch(dispatch.receiveFD), now > head.readyAt &+ cfg.limitNanos {
            budget -= 1
            guard case .connection(let fd, let index, let readyAt) = dispatch.receive() else { break }
            guard index >= 0, index < cfg.debugListener.count else { Sys.close(fd); continue }  // cannot happen
            report.received.append(index)
            if now > readyAt &+ cfg.limitNanos {
                markOverloadSeen(now)
                answerTaken(fd, listener: index, readyAt: readyAt, now: now, accepted: false)
            } else if dispatch.send(fd, listener: index, readyAt: readyAt) == 0 {
                // Another receiver took the head between our peek and recv: this younger one
                // goes back (to the tail; rare).
                Sys.close(fd)
                report.queued.append(index)
            } else {
                report.kept.append((fd, index, readyAt, true))
            }
        }
        let queued = (try? Sys.datagramQueued(dispatch.receiveFD)) ?? false
        var overloaded = overloaded(now: now, cfg)
        if overloaded, queued { markOverloadSeen(now) }
        // 2. New connections. Nobody sees the age of one in the accept queue while every worker
        // is busy (only who accepts it: TCP_INFO). Not known to be over the limit: while the
        // dispatch queue is empty, move one there, where the pass above sees its age (and an
        // idle worker, should there be one, takes it as from the listener). While the limit
        // is being hit: all of them, each to the queue if it has room, else answered now.
        if !overloaded {
            guard !queued else { return }
            budget = 1
        }
        var storage = sockaddr_storage()
        for l in cfg.acceptListeners {
            while budget > 0 {
                var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
                guard case .connection(let fd) = Sys.accept(l.fd, &storage, &len) else { break }
                budget -= 1
                report.accepted.append(l.index)
                // The accept queue's wait counts (docs/overload.md, TCP_INFO).
                let waited = (Sys.tcpWaitedMillis(fd) ?? 0) &* 1_000_000
                let readyAt = now &- min(waited, now)
                if waited > cfg.limitNanos {
                    overloaded = true
                } else if admits(now: now, cfg) {
                    if dispatch.send(fd, listener: l.index, readyAt: readyAt) == 0 {
                        Sys.close(fd)
                        report.queued.append(l.index)
                        continue
                    }
                    if !overloaded {
                        report.kept.append((fd, l.index, readyAt, false))  // lost a race for the last place
                        continue
                    }
                }
                // Over the limit already, refused at arrival, or no place in the queue while the
                // limit is being hit.
                markOverloadSeen(now)
                answerTaken(fd, listener: l.index, readyAt: readyAt, now: now, accepted: true)
            }
        }
    }

    /// Under mutex: whether a new request may join the dispatch queue, or would likely wait
    /// there past the limit and is answered now instead (`Admission.admits`, which says how).
    /// Asked at every arrival while our worker is in a blocking handler, whether or not the
    /// limit is being hit: one ioctl (SIOCOUTQ), and a peek at the head when the queue is not
    /// empty. (Only while it was being hit, as first built, the arrivals in between were
    /// queued whatever the queue held, and were most of the late sheds.)
    func admits(now: UInt64, _ cfg: WatcherShedConfig) -> Bool {
        let length = cfg.entryBytes.flatMap { dispatch.queued(entryBytes: $0) }
        if length == 0 { return true }  // nothing ahead of it (and no head to peek)
        let head = Sys.peekDispatch(dispatch.receiveFD)
        return Admission.admits(queueLength: length, serviceNanos: serviceNanos, workers: cfg.workers,
                                headAgeNanos: head.map { now > $0.readyAt ? now - $0.readyAt : 0 },
                                limitNanos: cfg.limitNanos, limitBeingHit: overloaded(now: now, cfg))
    }

    /// Under mutex, active: our own readable idle connection `fd` that may not join the queue
    /// (`admits`) or that the full queue refused, while the limit is being hit: answer it now
    /// rather than after our handler. False if it was not answered (and is still ours).
    @discardableResult
    func shedOwn(_ fd: Int32, listener: Int, now: UInt64) -> Bool {
        guard let cfg = shedConfig, answer(fd, listener: listener, cfg, reason: .arrival, waitedMicros: 0, closes: false) == .answered
        else { return false }
        markOverloadSeen(now)
        closeAnswered(fd)
        report.shedOwn.append(fd)
        report.shed.append((listener, .arrival, 0))
        return true
    }

    /// The event loop, about to put its own readable connection behind the queue
    /// (Worker.queueBehindDispatched): the same rule as for the watcher's arrivals. True if it
    /// was answered 503 and closed (the caller forgets it and counts the shed).
    func shedAtArrival(_ fd: Int32, listener: Int, now: UInt64) -> Bool {
        mutex.lock()
        defer { mutex.unlock() }
        guard let cfg = shedConfig, !admits(now: now, cfg),
              answer(fd, listener: listener, cfg, reason: .arrival, waitedMicros: 0, closes: false) == .answered else { return false }
        markOverloadSeen(now)
        closeAnswered(fd)
        return true
    }

    /// One of our connections answered 503: like a hand-off, out of both epolls before the close.
    private func closeAnswered(_ fd: Int32) {
        worker.release(fd, watcher: self, what: "shed connection")
    }

    /// A connection the watcher holds (accepted, or taken from the queue): answer 503 and
    /// close, or keep it. One it accepted whose request has not come yet is held until it comes
    /// (WatcherHeld.swift: queued past `admits` it would likely be shed late, after the limit;
    /// most clients write right after connecting). Failing that, and for a health check, it
    /// joins the queue even past `admits`: whoever takes it reads its request (and sheds it if
    /// late); kept for our event loop it would wait for our handler.
    func answerTaken(_ fd: Int32, listener: Int, readyAt: UInt64, now: UInt64, accepted: Bool) {
        guard let cfg = shedConfig else { return }
        // Over the limit already (from the queue's head, or the accept queue's wait), or
        // refused at arrival while the limit is being hit.
        let reason: ShedReason = now > readyAt &+ cfg.limitNanos ? .queueTime : .arrival
        let waited = now > readyAt ? (now - readyAt) / 1000 : 0
        switch answer(fd, listener: listener, cfg, reason: reason, waitedMicros: waited, closes: true) {
        case .answered:
            Sys.close(fd)
            report.shed.append((listener, reason, waited))
        case .gone:
            Sys.close(fd)
            report.gone += 1
        case .early where accepted && hold(fd, listener: listener):
            return
        case .keep, .early:
            if accepted, dispatch.send(fd, listener: listener, readyAt: readyAt) == 0 {
                Sys.close(fd)
                report.queued.append(listener)
            } else {
                report.kept.append((fd, listener, readyAt, !accepted))
            }
        }
    }

    /// Reads the request bytes that are there and writes the canned 503 (not closed here),
    /// counting it first (`reason`, `waitedMicros`; `closes`: its close counts as ours too),
    /// so that a client that has its 503 finds it in the metrics.
    /// `.early`: no request bytes yet (answering before the request would make its later
    /// arrival reset the connection); `.keep`: a health check; `.gone`: EOF or an error.
    private func answer(_ fd: Int32, listener: Int, _ cfg: WatcherShedConfig,
                        reason: ShedReason, waitedMicros: UInt64, closes: Bool) -> WatcherAnswer {
        let peeked = scratch.withUnsafeMutableBytes { Sys.peek(fd, $0.baseAddress, $0.count) }
        guard case .done(let n) = peeked else { return peeked == .wouldBlock ? .early : .gone }
        if n == 0 { return .gone }
        let line = scratch[0..<n]
        if cfg.debugListener[listener], ShedDecision.isDebugHealthCheck(line) { return .keep }
        let isHEAD = ShedDecision.isHEAD(line)
        // Drain what came (a GET's head; a body beyond 64 KiB may still reset the close).
        for _ in 0..<16 {
            guard case .done(let got) = scratch.withUnsafeMutableBytes({ Sys.recv(fd, $0.baseAddress, $0.count) }),
                  got > 0 else { break }
        }
        let bytes = cannedResponse(isHEAD: isHEAD)
        worker.scoreboard.countWatcherShed(worker.slot, listener: listener, reason: reason, micros: waitedMicros, closed: closes)
        // ~200 bytes into an empty socket buffer: one send. A failure means the client left.
        _ = bytes.withUnsafeBytes { Sys.send(fd, $0.baseAddress, $0.count) }
        return .answered
    }

    /// The 503 the worker would write (ShedDecision.response, Connection: close), its Date
    /// renewed once a second.
    private func cannedResponse(isHEAD: Bool) -> [UInt8] {
        let second = wallClockSeconds()
        if second != cannedSecond {
            cannedSecond = second
            let date = HTTPDate.format(epochSeconds: second)
            let response = ShedDecision.response
            cannedHEAD.removeAll(keepingCapacity: true)
            _ = HTTPResponseHead.serialize(response, requestIsHEAD: true, keepAlive: false, versionMinor: 1, date: date, into: &cannedHEAD)
            cannedGET.removeAll(keepingCapacity: true)
            _ = HTTPResponseHead.serialize(response, requestIsHEAD: false, keepAlive: false, versionMinor: 1, date: date, into: &cannedGET)
            if case .bytes(let body) = response.body { cannedGET += body }
        }
        return isHEAD ? cannedHEAD : cannedGET
    }
}

extension Worker {
    /// After a blocking handler: counts what the watcher answered and accepted meanwhile, and
    /// registers the connections it kept (their events come from our epoll from now on).
    func applyWatcherReport(_ report: WatcherShedReport) {
        for l in report.accepted {
            scoreboard.bump(slot, listener: l, .accepted)
            scoreboard.bump(slot, .accepted)
        }
        for l in report.queued { scoreboard.bump(slot, listener: l, Scoreboard.QueueField.handedOff) }
        for l in report.received { scoreboard.bump(slot, listener: l, Scoreboard.QueueField.received) }
        for _ in 0..<report.gone { scoreboard.bump(slot, closed: .clientClosed) }
        // The 503s are counted already (by the watcher, as it sent them); the episode is ours.
        for s in report.shed { noteShed(ShedDecision(reason: s.reason, waitedMicros: s.waitedMicros), listener: s.listener) }
        for k in report.kept { register(kept: k.fd, listener: k.listener, readyAt: k.readyAt, received: k.received) }
    }

    /// Our connections the watcher answered 503 and closed (before `applyWatcherReport`).
    func forgetShed(_ fds: [Int32]) {
        for fd in fds {
            let i = Int(fd)
            guard i < connections.count, let conn = connections[i] else { continue }
            forgetReleased(conn, because: .responseDone)
        }
    }

    /// A connection the watcher took but could not answer: ours now, like an accepted one.
    private func register(kept fd: Int32, listener index: Int, readyAt: UInt64, received: Bool) {
        let conn = Connection(fd: fd, listener: index, peer: peerAddress(of: fd), host: self, settings: connectionSettings)
        // From the dispatch queue: its sender may still hold the file a moment (see adopt).
        dispatchState.arrived(fd, readySince: readyAt, received: received)
        guard register(conn, what: "connection kept by the watcher") else { return }
        if listenerMayBlock[index], let watcher { watch(fd, watcher) }
    }
}
