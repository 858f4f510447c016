import HerdSys
import Logging

/// A worker's helper thread for work-conserving dispatch (see Dispatch.swift, docs/design.md).
///
/// Connections of listeners whose handler may block are registered once, at accept, in the
/// watcher's own epoll (EPOLLIN | EPOLLET; no syscall per request). The watcher thread always
/// sits in epoll_wait on it. Before a blocking handler the event loop calls `start(busy:)` (a
/// mutex, no wake-up); while active, for each connection that turns readable and is idle in the
/// event loop's view (no buffered input, nothing to send, not lingering) and is not the one being
/// served, the watcher sends the fd to the dispatch socket, removes it from both epolls and
/// closes it. After the handler, `stop()` returns the connections handed off; the event loop
/// forgets them. Edges that come while the event loop serves (inactive) are only noted; the next
/// `start()` considers them on the event loop's thread.
///
/// Parked only when its wake-ups are of no use (docs/design.md, "The watcher parks when no
/// handler blocks"). At saturation every request is a blocking handler: a wake-up at each
/// start() would be a syscall and two context switches per request, on the cores the handlers
/// need, so normally the thread stays in epoll_wait and start() wakes nothing. But a listener
/// whose blocking routes are seldom used (herd-notes' /json20 beside its GRDB routes) woke the
/// watcher for nearly every request, for nothing (issue 22). So after `parkAfter` wake-ups in a
/// row with no handler started, the watcher parks on an eventfd of its own; the next start()
/// finds `parked` set (under the mutex it takes anyway: no atomic, no syscall while unparked)
/// and writes the eventfd. Edges that come while it is parked stay on its epoll's ready list
/// (edge-triggered items are queued once, until an epoll_wait reports them), so once woken it
/// sees them while active and hands them off as if it had been awake.
///
/// Synchronization: everything the watcher does to a connection happens under `mutex` while
/// `active` is true; `stop()` clears `active` under the same mutex, so once it returns the
/// watcher touches nothing, and the lock/unlock pairs order the event loop's writes to the
/// connection table before the watcher's reads and the watcher's hand-offs before the event
/// loop's next step. The event loop does not run while the watcher is active, so the fd numbers
/// in the connection table stay valid (a number the watcher closed, which the handler may reuse,
/// is never looked at again in that period). Stale edges (bytes the event loop already read) are filtered with a
/// one-byte recv(MSG_PEEK).
final class Watcher: @unchecked Sendable {
    /// The watcher's epoll (connections of blocking listeners, edge-triggered).
    let epoll: Epoll
    /// The worker's logger (a value: safe to use from the watcher's thread).
    let log: Logger
    let mutex: ThreadMutex
    // Guarded by mutex:
    private var active = false
    private var busyFD: Int32 = -1
    private var handedOff: [Int32] = []
    /// Edges the watcher's epoll reported while it was not active (after `stop()` it may still
    /// sit in epoll_wait until its timeout). An edge is reported once: dropping it would leave
    /// that connection unseen by every later `start()` until new bytes arrive, so a request
    /// that came in between two handlers would wait for the next handler of its worker instead
    /// of going to an idle one. They are considered first when the watcher is started again
    /// (`consider` filters what the event loop has read meanwhile).
    private var pending: [Int32] = []
    /// Parking (see the type's comment): set by the watcher, under mutex, when it is about to
    /// block on `parkFD`; cleared by the start() that then writes `parkFD`. `starts` counts
    /// start() calls, so that the watcher tells a handler it did not see (started and stopped
    /// between two of its wake-ups) from none.
    private var parked = false
    private var starts: UInt64 = 0
    /// A blocking eventfd: the parked watcher reads it, start() writes it.
    private let parkFD: Int32
    /// The event loop's request to park (`requestPark`): `starts` when it asked, so that a
    /// start() since then cancels it. Guarded by mutex.
    private var parkRequest: UInt64? = nil
    /// A non-blocking eventfd in the watcher's epoll (level-triggered): `requestPark` writes
    /// it, the watcher drains it.
    private let wakeFD: Int32
    /// Wake-ups in a row, with no handler started, after which the watcher parks. A blocking
    /// listener's own requests start a handler between two wake-ups (each request is one), so
    /// they never count up to it; only requests to routes that do not block do. A parked
    /// watcher costs the next start() one eventfd write, and the watcher a wake-up it would have
    /// had anyway for the next edge. 8, measured against 32 (docs/routing.md, 2026-12-03): with
    /// one request in 64 to a blocking route the watcher woke 0.18 times per request against
    /// 0.50 (0.88 without parking), p99 8.9 against 10.7 ms; json20 alone: none with either.
    static let parkAfter = 8
    #if HERDD_TEST_HOOKS
    /// HERDD_TEST_WATCHER_OWN_COUNT_OFF=1 (test builds only): the watcher's wake-ups by its
    /// connections count for nothing, as when they all return nothing (the event loop read
    /// first): neither its own count nor a pending park request; only `requestPark`'s wake-up
    /// parks it (the test of that path).
    static let countsItsWakeUps = Sys.environment("HERDD_TEST_WATCHER_OWN_COUNT_OFF") != "1"
    #else
    static let countsItsWakeUps = true
    #endif
    /// --max-queue-time (WatcherShedding.swift); nil when off. Guarded by mutex: what to tell
    /// the event loop, the buffer for request bytes and the canned 503.
    let shedConfig: WatcherShedConfig?
    var report = WatcherShedReport()
    var scratch = [UInt8](repeating: 0, count: 2048)
    var cannedSecond = -1
    var cannedGET: [UInt8] = []
    var cannedHEAD: [UInt8] = []
    /// Connections accepted while the limit was being hit whose request had not come yet, kept
    /// in our epoll until it does (WatcherHeld.swift); empty whenever we are not active.
    var held: [(fd: Int32, listener: Int)] = []
    /// Our worker's time per blocking request, start to start: when the last one started, and
    /// a moving average (1/8 per handler) for `admits`.
    var handlerStartedAt: UInt64 = 0
    var serviceNanos: UInt64 = 0
    /// The worker whose connection table the watcher reads while the event loop is inside a
    /// handler. The worker lives as long as the process.
    unowned(unsafe) let worker: Worker
    let dispatch: DispatchPair

    init(worker: Worker, dispatch: DispatchPair) throws {
        self.worker = worker
        self.dispatch = dispatch
        self.log = worker.log
        shedConfig = WatcherShedConfig(worker: worker)
        epoll = try Epoll(what: "watcher")
        mutex = try ThreadMutex(what: "watcher")
        parkFD = try Sys.eventFD(blocking: true, what: "watcher park")
        wakeFD = try Sys.eventFD(what: "watcher wake")
        try epoll.add(wakeFD, .input, .watcherWake, what: "watcher wake eventfd")
        handedOff.reserveCapacity(64)
        pending.reserveCapacity(64)
    }

    /// Starts the thread (small stack: it only runs `loop`). The thread holds a reference to
    /// the watcher for the life of the process.
    func spawn() throws {
        try Sys.startThread(stackSize: 256 * 1024, what: "watcher") { self.loop() }
    }

    /// Registers a connection (at accept or when taken from the dispatch socket). Edge-triggered:
    /// one registration for the connection's life, no syscall per request; close() removes it.
    func watch(_ fd: Int32) throws(SysError) {
        try epoll.add(fd, [.input, .edgeTriggered], .connection(fd), what: "watched connection")
    }

    /// Event loop, before a blocking handler: hand off readable idle connections other than `busy`.
    /// Edges the watcher saw while inactive are considered here, on the event loop's thread
    /// (under the mutex, like the watcher would): the watcher needs no wake-up to start, unless
    /// it parked (then one eventfd write, after the unlock).
    func start(busy: Int32) {
        mutex.lock()
        active = true
        busyFD = busy
        starts &+= 1
        let wake = parked
        parked = false
        if let shedConfig {
            let now = monotonicNanos()
            // The time from one blocking handler's start to the next: the handler, and what
            // the worker does between two (its reads and writes, and waiting for a CPU when
            // the cores are short), which is how fast it takes the next request. Capped at
            // the limit: an idle pause is not service time.
            if handlerStartedAt != 0 {
                let cycle = min(now &- handlerStartedAt, shedConfig.limitNanos)
                serviceNanos = serviceNanos == 0 ? cycle : serviceNanos - serviceNanos / 8 + cycle / 8
            }
            handlerStartedAt = now
        }
        if !pending.isEmpty {
            let now = monotonicNanos()
            for fd in pending { consider(fd, now: now) }
            pending.removeAll(keepingCapacity: true)
        }
        mutex.unlock()
        // No lost wake-up: the watcher set `parked` under the mutex before it reads parkFD, so
        // either it saw `starts` move and did not park, or we saw `parked`; a write that comes
        // before its read leaves the counter at 1 and the read returns at once.
        if wake { Sys.signalEventFD(parkFD) }
    }

    /// Event loop, after `parkAfter` requests in a row of a blocking listener that blocked
    /// nothing: park. The watcher's own count of wake-ups misses those that return nothing (a
    /// request the event loop read before the woken watcher looked: the kernel's epoll_wait
    /// then sleeps again without returning), which under a short CPU were most of them
    /// (docs/design.md, "The watcher parks when no handler blocks"). One eventfd write per
    /// run of quiet requests; nothing when the watcher parked already or a request is pending.
    func requestPark() {
        mutex.lock()
        let wake = !parked && !active && parkRequest == nil
        if wake { parkRequest = starts }
        mutex.unlock()
        if wake { Sys.signalEventFD(wakeFD) }
    }

    /// Event loop, after the handler: from now on the watcher touches nothing. Returns the fds
    /// handed off meanwhile (already sent, removed from both epolls and closed), and what it
    /// shed, accepted or kept (`shed`, left empty when it did nothing).
    func stop(into out: inout [Int32], shed: inout WatcherShedReport) {
        mutex.lock()
        active = false
        busyFD = -1
        if !handedOff.isEmpty {
            out += handedOff
            handedOff.removeAll(keepingCapacity: true)
        }
        if !held.isEmpty { releaseHeld() }
        if !report.isEmpty {
            // Their numbers may be reused by then: events still in the loop's batch are stale.
            out += report.shedOwn
            swap(&report, &shed)
        }
        mutex.unlock()
    }

    private func loop() -> Never {
        // Its own name in `top -H` and /proc/PID/task/TID/comm (the tests count its context
        // switches there). Cosmetic: nothing to report.
        do { try Sys.setThreadName("watcher") } catch {}
        var events = EpollReadyList(capacity: 64)
        var wasActive = false
        // Wake-ups in a row with no handler started, and `starts` at our last look.
        var quiet = 0
        var startsSeen: UInt64 = 0
        while true {
            // In epoll_wait unless parked: starting the watcher costs the event loop no wake-up
            // (a syscall and two context switches per handler, which at saturation is every
            // request). Edges that come while the event loop itself serves (inactive) wake us
            // too; they are noted and considered at the next start().
            // EINTR: 0. Nothing else can fail on a valid epoll fd; should it, say so, and pause
            // rather than spin.
            // With --max-queue-time, also a tick (WatcherShedding.swift): short while the worker
            // was in a blocking handler at our last look, long otherwise.
            let timeout = tickMillis(wasActive: wasActive)
            let n: Int
            do { n = try epoll.wait(&events, timeoutMillis: timeout) } catch {
                log.error("\(error)", metadata: ["event": "dispatch-error"])
                Sys.sleep(micros: 50_000)
                continue
            }
            if n == 0 && shedConfig == nil { continue }
            var woken = false
            for i in 0..<n where events[i].tag == .watcherWake { Sys.drainEventFD(wakeFD); woken = true }
            mutex.lock()
            // Asked to park, and no handler started since: park now (below).
            var askedToPark = false
            if let asked = parkRequest, woken || Watcher.countsItsWakeUps {
                parkRequest = nil
                askedToPark = !active && starts == asked
            }
            if active {
                let now = monotonicNanos()
                for i in 0..<n {
                    if case .connection(let fd)? = events[i].tag { consider(fd, now: now) }
                }
                if let shedConfig { shedTick(now: now, shedConfig) }
            } else {
                // Not active: the event loop may read these connections itself (its own epoll
                // has the same edges); if it has not when the next handler starts, they go then.
                for i in 0..<n {
                    guard case .connection(let fd)? = events[i].tag else { continue }
                    if pending.count < 4096, !pending.contains(fd) { pending.append(fd) }
                }
            }
            wasActive = active
            if active || starts != startsSeen {
                startsSeen = starts
                quiet = 0
            } else if Watcher.countsItsWakeUps {
                quiet += 1
            }
            if askedToPark { quiet = Watcher.parkAfter }
            guard quiet >= Watcher.parkAfter else {
                mutex.unlock()
                continue
            }
            // Park: no handler started for `parkAfter` wake-ups. `parked` is set under the
            // mutex, with `active` false and no start() since our last look; the start() that
            // comes next sees it and writes parkFD (see start()).
            quiet = 0
            parked = true
            mutex.unlock()
            do { try Sys.waitEventFD(parkFD, what: "watcher park") } catch {
                // Cannot happen on our blocking eventfd; should it, say so and go back to
                // epoll_wait (a start() that still sees `parked` only writes the counter once
                // more, and our next park returns at once).
                log.error("\(error)", metadata: ["event": "dispatch-error"])
                Sys.sleep(micros: 50_000)
            }
            // A handler started: with --max-queue-time, tick at once.
            wasActive = true
        }
    }

    /// Under mutex, active: hand off `fd` if it is an idle connection with input waiting.
    private func consider(_ fd: Int32, now: UInt64) {
        // One we accepted and hold until its request comes (not in the worker's table).
        if let shedConfig, !held.isEmpty, let i = held.firstIndex(where: { $0.fd == fd }) {
            takeHeld(i, now: now, shedConfig)
            return
        }
        // Not a number we closed (or hold, not yet in the table) during this handler.
        guard fd != busyFD, fd >= 0, !handedOff.contains(fd), !report.shedOwn.contains(fd),
              !report.kept.contains(where: { $0.fd == fd }), Int(fd) < worker.connections.count,
              let conn = worker.connections[Int(fd)], conn.isIdle, !worker.draining,
              // A pending fd number may have been reused by a connection of another listener.
              worker.listenerMayBlock[conn.listener] else { return }
        // Stale edge (the event loop read those bytes before the handler started) or EOF: keep.
        guard Sys.hasInput(fd) else { return }
        // --max-queue-time: a request that would likely wait past the limit in the queue is
        // answered now (Admission.swift).
        // (One it could not answer, a health check, is handed off as usual.)
        if let shedConfig, !admits(now: now, shedConfig), shedOwn(fd, listener: conn.listener, now: now) { return }
        // Send first, then remove from our epolls and close (Worker.handOff): if the queue is
        // full (EAGAIN) the connection stays ours, untouched, and the event loop reads it after
        // the handler.
        // Our copy is closed now rather than after the handler: the client's connection ends when
        // the receiver closes it (a close-delimited response must not wait for our handler),
        // and no registration of ours outlives it. The event loop only forgets the connection.
        // The handler may reuse the fd number meanwhile: `handedOff` keeps us off it.
        guard worker.handOff(fd, listener: conn.listener, readyAt: now, via: dispatch, watcher: self) else {
            // The queue is full. While the limit is being hit, answer 503 now rather than
            // after our handler (WatcherShedding.swift).
            if let shedConfig, overloaded(now: now, shedConfig) { shedOwn(fd, listener: conn.listener, now: now) }
            return
        }
        handedOff.append(fd)
    }
}
