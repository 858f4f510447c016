import CHerdSys
import Glibc

/// Event bits of an epoll registration or of a ready event (values from sys/epoll.h, read
/// through the shim: Swift cannot import them as macros of macros).
@usableFromInline package struct EpollEvents: OptionSet, Sendable {
    @usableFromInline package let rawValue: UInt32
    @inlinable @inline(__always) package init(rawValue: UInt32) { self.rawValue = rawValue }

    @inlinable package static var input: EpollEvents { EpollEvents(rawValue: herd_epollin()) }
    @inlinable package static var output: EpollEvents { EpollEvents(rawValue: herd_epollout()) }
    /// The peer shut down its writing side (a FIN arrived).
    @inlinable package static var readHangUp: EpollEvents { EpollEvents(rawValue: herd_epollrdhup()) }
    @inlinable package static var hangUp: EpollEvents { EpollEvents(rawValue: herd_epollhup()) }
    @inlinable package static var error: EpollEvents { EpollEvents(rawValue: herd_epollerr()) }
    /// Edge-triggered: reported once per change, read/write until EAGAIN.
    @inlinable package static var edgeTriggered: EpollEvents { EpollEvents(rawValue: herd_epollet()) }
    /// Wake one of the epolls waiting on this fd, not all (only at EPOLL_CTL_ADD, never MOD).
    @inlinable package static var exclusive: EpollEvents { EpollEvents(rawValue: herd_epollexclusive()) }

    /// An HTTP connection (worker, metrics endpoint): edge-triggered read, write and peer hang-up.
    @inlinable package static var connection: EpollEvents { [.input, .output, .readHangUp, .edgeTriggered] }
}

/// What an epoll registration stands for: the one tag type of every epoll in herdd (worker,
/// watcher, master). Stored in the event's 64-bit user data: the kind in the high 32 bits, an
/// index or fd in the low 32 (so a connection's tag is its fd, as before).
@usableFromInline package enum EpollTag: Equatable, Sendable {
    /// A connection, by fd (worker, watcher).
    case connection(Int32)
    /// A worker's listener, by index in its listener table.
    case listener(Int)
    /// The process's signalfd (worker, master).
    case signals
    /// The worker's end of the dispatch socket (Worker/Dispatch.swift).
    case dispatch
    /// Old master: its end of the upgrade socket to the new master (Master/Upgrade.swift).
    case upgradePipe
    /// New master: its end of the handover socket from the old master.
    case upgradeHandover
    /// Master: a listener with handler `metrics`, by index (Metrics/MetricsServer.swift).
    case metricsListener(Int)
    /// Master: a client of the metrics endpoint, by fd.
    case metricsClient(Int32)
    /// Worker: the eventfd that wakes its event loop for Swift concurrency jobs enqueued by
    /// other threads (Worker/LoopExecutor.swift).
    case executor

    @inlinable @inline(__always)
    package var rawValue: UInt64 {
        switch self {
        case .connection(let fd): return UInt64(UInt32(bitPattern: fd))
        case .listener(let i): return 1 << 32 | UInt64(truncatingIfNeeded: i) & 0xffff_ffff
        case .signals: return 2 << 32
        case .dispatch: return 3 << 32
        case .upgradePipe: return 4 << 32
        case .upgradeHandover: return 5 << 32
        case .metricsListener(let i): return 6 << 32 | UInt64(truncatingIfNeeded: i) & 0xffff_ffff
        case .metricsClient(let fd): return 7 << 32 | UInt64(UInt32(bitPattern: fd))
        case .executor: return 8 << 32
        }
    }

    /// nil for user data no registration of ours carries.
    @inlinable @inline(__always)
    package init?(rawValue: UInt64) {
        let low = UInt32(truncatingIfNeeded: rawValue)
        switch rawValue >> 32 {
        case 0: self = .connection(Int32(bitPattern: low))
        case 1: self = .listener(Int(low))
        case 2: self = .signals
        case 3: self = .dispatch
        case 4: self = .upgradePipe
        case 5: self = .upgradeHandover
        case 6: self = .metricsListener(Int(low))
        case 7: self = .metricsClient(Int32(bitPattern: low))
        case 8: self = .executor
        default: return nil
        }
    }
}

/// One ready event from `Epoll.wait`.
@usableFromInline package struct EpollEvent {
    @usableFromInline package let events: EpollEvents
    @usableFromInline package let tag: EpollTag?

    @inlinable @inline(__always)
    package init(events: EpollEvents, tag: EpollTag?) {
        self.events = events
        self.tag = tag
    }
}

/// The buffer `Epoll.wait` fills (at most 64 events per wait, the shim's limit); reused across
/// waits, so waiting allocates nothing.
@usableFromInline package struct EpollReadyList {
    @usableFromInline var raw: [herd_event]

    @usableFromInline package init(capacity: Int) {
        raw = [herd_event](repeating: herd_event(), count: min(max(1, capacity), 64))
    }

    @inlinable @inline(__always)
    package subscript(i: Int) -> EpollEvent {
        let e = raw[i]
        return EpollEvent(events: EpollEvents(rawValue: e.events), tag: EpollTag(rawValue: e.data))
    }
}

/// An epoll instance. Every registration carries an `EpollTag`; every epoll_ctl failure is a
/// SysError naming the operation (callers handle it or log it, none is dropped silently).
/// epoll_event is packed on x86_64: the shim fills and reads it (herd_epoll_ctl/herd_epoll_wait).
@usableFromInline package struct Epoll: Sendable {
    @usableFromInline package let fd: Int32

    /// Not created yet (every call fails with EBADF).
    @usableFromInline package static let none = Epoll(unchecked: -1)

    @inlinable init(unchecked fd: Int32) { self.fd = fd }

    /// epoll_create1(EPOLL_CLOEXEC).
    @usableFromInline package init(what: @autoclosure () -> String? = nil) throws(SysError) {
        fd = try sys("epoll_create1", detail: what()) { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    }

    /// EPOLL_CTL_ADD. EPOLLEXCLUSIVE may be set only here.
    @inlinable @inline(__always)
    package func add(_ fd: Int32, _ events: EpollEvents, _ tag: EpollTag, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("epoll_ctl", detail: "EPOLL_CTL_ADD \(what() ?? "fd \(fd)")") {
            herd_epoll_ctl(self.fd, EPOLL_CTL_ADD, fd, events.rawValue, tag.rawValue)
        }
    }

    /// EPOLL_CTL_MOD (for an edge-triggered fd: re-queues it as ready if it is).
    @inlinable @inline(__always)
    package func modify(_ fd: Int32, _ events: EpollEvents, _ tag: EpollTag, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("epoll_ctl", detail: "EPOLL_CTL_MOD \(what() ?? "fd \(fd)")") {
            herd_epoll_ctl(self.fd, EPOLL_CTL_MOD, fd, events.rawValue, tag.rawValue)
        }
    }

    /// EPOLL_CTL_DEL. A registration lives as long as the open file, not the fd: remove it
    /// before closing an fd whose file another process or epoll still holds.
    @inlinable @inline(__always)
    package func remove(_ fd: Int32, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("epoll_ctl", detail: "EPOLL_CTL_DEL \(what() ?? "fd \(fd)")") {
            herd_epoll_ctl(self.fd, EPOLL_CTL_DEL, fd, 0, 0)
        }
    }

    /// Waits up to `timeoutMillis` for events; returns how many of `list` are filled. EINTR:
    /// 0 events (the caller's loop runs its timers; see the EINTR policy in SysError.swift).
    @inlinable @inline(__always)
    package func wait(_ list: inout EpollReadyList, timeoutMillis: Int32) throws(SysError) -> Int {
        let n = list.raw.withUnsafeMutableBufferPointer { herd_epoll_wait(fd, $0.baseAddress, Int32($0.count), timeoutMillis) }
        if n >= 0 { return Int(n) }
        let e = Glibc.errno
        if e == EINTR { return 0 }
        throw SysError("epoll_wait", errno: e)
    }
}
