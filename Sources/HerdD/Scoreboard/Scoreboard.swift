import HerdLibc
import HerdSys

/// The shared-memory scoreboard: one memfd mapping created by the master before it spawns any
/// worker, passed to each worker at a known fd and mapped MAP_SHARED by both.
///
/// Memory layout (all fields are little-endian UInt64 words, accessed only with the __atomic
/// helpers of the C shim, so a reader never sees a torn value):
///
///     offset 0     header, 512 bytes: [0] magic "HERDSCB1", [1] layout version, [2] slot count,
///                  [3] listeners per slot, [4] master pid, then the master's command results
///                  (`HeaderField`: generation, reload and upgrade sequence numbers and outcomes)
///                  and from word 16 a NUL-terminated message for the last failure (384 bytes)
///     offset 512   slot 0, 8192 bytes (1024 words), then slot 1, ... (pages are only allocated
///                  when touched, so unused slots cost nothing)
///
/// Slot words (see `Field`): pid, generation, state, heartbeat (CLOCK_MONOTONIC ns), request and
/// status-class counters, bytes out, accepted/active connections, start time, exit reason,
/// dispatch wakeups, async requests; from word 22 connections closed per `CloseReason` (`closeBase`);
/// then per listener (up to `maxListeners`, from word 40) 20 words: epoll wakeups, accepted, empty
/// wakeups (first accept4 gave EAGAIN: another worker took the connection — the herd meter), drain
/// EAGAINs (the normal EAGAIN that ends an accept loop after at least one accept), request
/// latency sum (µs) and count, and 12 latency histogram buckets (non-cumulative, bounds in
/// `latencyBounds`). From word 512, per listener 20 words (`QueueField`): queue time (readable or
/// accepted -> handler start) sum (µs) and count, 13 histogram buckets (`queueBoundsMicros`),
/// connections handed to the dispatch socket and taken from it (work-conserving dispatch), then
/// requests shed by --max-queue-time per `ShedReason` and the queue time of the shed (µs sum).
/// From word 832 the words of the worker's watcher thread (Scoreboard+WatcherCounts.swift).
/// The header layout is unchanged from version 2 (slots grew), so `herdd reload/upgrade` of
/// either version read each other's header; workers always run their master's binary.
///
/// A worker writes only its own slot (each word has one writer: its event loop, or its watcher
/// thread under the watcher's mutex); the master reads all slots and (re)initialises a slot only
/// while no worker process owns it. No locks, no messages, readable when every worker is busy.
final class Scoreboard: @unchecked Sendable {
    static let magic: UInt64 = 0x3142_4353_4452_4548 // "HERDSCB1" little-endian
    static let layoutVersion: UInt64 = 2
    static let headerWords = 64
    static let messageWord = 16

    /// Header words written by the master for `herdd reload` / `herdd upgrade`, which read the
    /// scoreboard of a running master through /proc/PID/fd.
    enum HeaderField: Int {
        case masterPID = 4, generation, reloadSeq, reloadResult, upgradeSeq, upgradeResult, upgradeNewPID
        /// One past the highest slot the master ever used: workers scan only below it.
        case slotHighWater
        /// Set (1) by a master whose graceful stop sealed the sockets herdd bound itself
        /// (Master/Stop.swift) before it signals its workers: a worker that begins its drain
        /// then first takes every connection still queued on them.
        case sweepAtDrain
        /// CLOCK_MONOTONIC ns (system-wide) when the limit of --max-queue-time was last seen
        /// being hit: a request shed for its queue time, or the dispatch queue still not empty
        /// since (WatcherShedding.swift). Any worker writes it (a plain store: the last one
        /// wins, any recent time will do).
        case overloadSeenAt
    }
    enum Outcome: UInt64 { case none = 0, ok, failed }
    static let slotWords = 1024
    static let maxListeners = 16
    static let listenerBase = 40
    static let listenerWords = 20
    /// Upper bounds of the latency buckets, in microseconds (the last bucket is +Inf beyond).
    static let latencyBoundsMicros: [UInt64] = [500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000]

    enum Field: Int {
        case pid = 0, generation, state, heartbeat, requests
        case status1xx, status2xx, status3xx, status4xx, status5xx
        case bytesOut, accepted, active, startedAt, exitReason
        /// Work-conserving dispatch: epoll wakeups for the dispatch socket, and those whose
        /// recvmsg found it empty (another worker took the connection), apart from the
        /// listeners' herd meter.
        case dispatchWakeups, dispatchEmptyWakeups
        /// Async requests (Worker/AsyncRequests.swift): tasks in flight now (a gauge), tasks
        /// started, and requests given up: deadline (--async-timeout), client gone, drain
        /// past --graceful-timeout.
        case asyncInFlight, asyncStarted, asyncTimedOut, asyncClientGone, asyncDrainCancelled
    }

    /// Connections closed, one word per `CloseReason` from this word (after `Field`, before the
    /// listeners' words; ScoreboardSpawnTests checks it fits).
    static let closeBase = Field.asyncDrainCancelled.rawValue + 1

    /// Per-listener words from `queueBase` (see the layout above).
    enum QueueField: Int {
        case sumMicros = 0, count, bucket0, handedOff = 15, received
        /// Requests shed (docs/overload.md), one word per `ShedReason`, then their queue time.
        case shedQueueTime, shedRequestStart, shedWaitMicros
    }
    static let queueBase = 512
    static let queueWords = 20
    /// Upper bounds of the queue-time buckets, in microseconds (the last bucket is +Inf beyond).
    static let queueBoundsMicros: [UInt64] = [100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 2_500_000]

    enum ListenerField: Int { case wakeups = 0, accepted, emptyWakeups, drainEagain, latencySumMicros, latencyCount, bucket0 }

    enum State: UInt64, Sendable {
        case free = 0, starting, idle, busy, draining, exited
        var name: String {
            switch self {
            case .free: "free"; case .starting: "starting"; case .idle: "idle"
            case .busy: "busy"; case .draining: "draining"; case .exited: "exited"
            }
        }
    }

    /// Why a worker left (written by the worker just before it exits).
    enum ExitReason: UInt64 { case none = 0, maxRequests, drained }

    let fd: Int32
    let slotCount: Int
    /// The mapping (the extensions in Scoreboard+*.swift read and write through it).
    let base: UnsafeMutablePointer<UInt64>

    static func size(slots: Int) -> Int { (headerWords + slots * slotWords) * 8 }

    /// Master side: creates the memfd and maps it.
    /// With `publishDirectory` (systemd's $RUNTIME_DIRECTORY), the scoreboard is a file
    /// `DIR/scoreboard` on that tmpfs instead of an anonymous memfd, so `herdd reload` /
    /// `herdd upgrade` run as ExecReload= can open it where /proc/PID/fd is hidden from them
    /// (ProtectProc=invisible, PrivateUsers=). It is created under a temporary name and renamed
    /// into place: a master being replaced keeps its own file (and a reader its mapping).
    /// With `publishNow: false` (a hot upgrade's new master) the rename waits for `publishFile()`:
    /// until the old master has committed, `herdd reload` must keep finding the old one.
    init(creatingSlots slots: Int, masterPID: Int32, publishDirectory: String? = nil, publishNow: Bool = true) throws {
        var published: (tmp: String, final: String)? = nil
        let low: Int32
        if let dir = publishDirectory {
            let final = dir + "/" + Scoreboard.fileName
            let tmp = final + ".\(masterPID)"
            low = try Sys.open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
            published = (tmp, final)
        } else {
            low = try Sys.memfd("herdd-scoreboard")
        }
        // Keep it above the handed-over range like the listeners, so posix_spawn's dup2 to 3, 4, ... never
        // overwrites it before it is copied to its own target number.
        let fd = try Sys.moveAbove(low, Spawn.firstPrivateFD, what: "scoreboard")
        let size = Scoreboard.size(slots: slots)
        do {
            try Sys.truncate(fd, size: size, what: "scoreboard")
            self.base = try Scoreboard.map(fd, size)
        } catch { Sys.close(fd); throw error }
        self.fd = fd
        self.slotCount = slots
        sharedStore(base + 1, Scoreboard.layoutVersion)
        sharedStore(base + 2, UInt64(slots))
        sharedStore(base + 3, UInt64(Scoreboard.maxListeners))
        sharedStore(base + 4, UInt64(masterPID))
        sharedStore(base, Scoreboard.magic)
        self.pendingPublish = published
        if publishNow { try publishFile() }
    }

    /// The temporary and final names of a scoreboard file not yet renamed into place.
    var pendingPublish: (tmp: String, final: String)? = nil

    static let fileName = "scoreboard"
    /// Where the scoreboard is published (nil: memfd only).
    var path: String? = nil

    /// Worker side: maps the memfd inherited at `fd` and checks the header. (Also used read-only
    /// by `herdd reload/upgrade` on a master's fd reopened through /proc.)
    init(attaching fd: Int32, readOnly: Bool = false) throws {
        let st = try Sys.fstat(fd, what: "scoreboard fd \(fd)")
        let size = Int(st.st_size)
        guard size >= Scoreboard.headerWords * 8 else { throw SysError("fstat", errno: EINVAL, detail: "scoreboard too small") }
        let base = try Scoreboard.map(fd, size, readOnly: readOnly)
        guard sharedLoad(base) == Scoreboard.magic, sharedLoad(base + 1) == Scoreboard.layoutVersion else {
            do { try Sys.unmap(base, size: size) } catch {} // our own mapping: cannot fail
            throw SysError("mmap", errno: EINVAL, detail: "fd \(fd) is not a herdd scoreboard")
        }
        self.fd = fd
        self.base = base
        self.slotCount = Int(sharedLoad(base + 2))
    }

    private static func map(_ fd: Int32, _ size: Int, readOnly: Bool = false) throws -> UnsafeMutablePointer<UInt64> {
        try Sys.mapShared(fd, size: size, readOnly: readOnly, what: "scoreboard").assumingMemoryBound(to: UInt64.self)
    }

    func header(_ f: HeaderField) -> UInt64 { sharedLoad(base + f.rawValue) }

    /// The mapping still reads as our scoreboard (magic and layout), e.g. before a watchdog ping.
    var isIntact: Bool {
        sharedLoad(base) == Scoreboard.magic && sharedLoad(base + 1) == Scoreboard.layoutVersion
    }
    func setHeader(_ f: HeaderField, _ v: UInt64) { sharedStore(base + f.rawValue, v) }

    @inline(__always) func word(_ slot: Int, _ f: Field) -> UnsafeMutablePointer<UInt64> {
        base + Scoreboard.headerWords + slot * Scoreboard.slotWords + f.rawValue
    }

    @inline(__always) func word(_ slot: Int, listener: Int, _ f: ListenerField) -> UnsafeMutablePointer<UInt64> {
        base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.listenerBase
            + listener * Scoreboard.listenerWords + f.rawValue
    }

    @inline(__always) func load(_ slot: Int, _ f: Field) -> UInt64 { sharedLoad(word(slot, f)) }
    @inline(__always) func store(_ slot: Int, _ f: Field, _ v: UInt64) { sharedStore(word(slot, f), v) }
    /// Single-writer increment: only the owning worker writes its slot, so load+store is enough
    /// (cheaper than a locked add) and readers still see whole values.
    @inline(__always) func bump(_ slot: Int, _ f: Field, by v: UInt64 = 1) {
        let p = word(slot, f)
        sharedStore(p, sharedLoad(p) &+ v)
    }
    @inline(__always) func bump(_ slot: Int, listener: Int, _ f: ListenerField) {
        let p = word(slot, listener: listener, f)
        sharedStore(p, sharedLoad(p) &+ 1)
    }

    @inline(__always) func bump(_ slot: Int, closed reason: CloseReason) {
        let p = base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.closeBase + reason.rawValue
        sharedStore(p, sharedLoad(p) &+ 1)
    }

    /// Connections a slot's worker closed, per `CloseReason` (raw value order).
    func closes(_ slot: Int) -> [UInt64] {
        let p = base + Scoreboard.headerWords + slot * Scoreboard.slotWords + Scoreboard.closeBase
        return CloseReason.allCases.map { sharedLoad(p + $0.rawValue) }
    }

    func state(_ slot: Int) -> State { State(rawValue: load(slot, .state)) ?? .free }

    /// Master side: zeroes a slot before a new worker takes it.
    func reset(_ slot: Int, generation: UInt64) {
        let p = base + Scoreboard.headerWords + slot * Scoreboard.slotWords
        for i in 0..<Scoreboard.slotWords { sharedStore(p + i, 0) }
        sharedStore(p + Field.generation.rawValue, generation)
        sharedStore(p + Field.heartbeat.rawValue, monotonicNanos())
        sharedStore(p + Field.state.rawValue, State.starting.rawValue)
    }

    /// A consistent-enough copy of one slot for reporting.
    struct SlotSnapshot: Sendable {
        var slot: Int
        var pid: Int32
        var generation: UInt64
        var state: State
        var heartbeat: UInt64
        var requests: UInt64
        var statusClasses: [UInt64] // 1xx..5xx
        var bytesOut: UInt64
        var accepted: UInt64
        var active: UInt64
        var exitReason: UInt64
        var dispatchWakeups: UInt64
        var dispatchEmptyWakeups: UInt64
        var asyncInFlight: UInt64
        /// Async counters in `Counters.async` order: started, timed out, client gone, drain.
        var async: [UInt64]
        /// Connections closed per `CloseReason` (raw value order).
        var closes: [UInt64]
    }

    func snapshot(_ slot: Int) -> SlotSnapshot {
        SlotSnapshot(
            slot: slot, pid: Int32(truncatingIfNeeded: load(slot, .pid)), generation: load(slot, .generation),
            state: state(slot), heartbeat: load(slot, .heartbeat), requests: load(slot, .requests),
            statusClasses: [.status1xx, .status2xx, .status3xx, .status4xx, .status5xx].map { load(slot, $0) },
            bytesOut: load(slot, .bytesOut), accepted: load(slot, .accepted), active: load(slot, .active),
            exitReason: load(slot, .exitReason),
            dispatchWakeups: load(slot, .dispatchWakeups), dispatchEmptyWakeups: load(slot, .dispatchEmptyWakeups),
            asyncInFlight: load(slot, .asyncInFlight),
            async: [.asyncStarted, .asyncTimedOut, .asyncClientGone, .asyncDrainCancelled].map { load(slot, $0) },
            closes: closes(slot)).addingWatcher(watcherCounts(slot))
    }
}
