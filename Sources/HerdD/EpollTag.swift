import HerdSys

/// What an epoll registration of herdd stands for: the one tag type of every epoll (worker,
/// watcher, master). HerdSys's Epoll carries 64 opaque bits; the roles live here. Stored in
/// the event's 64-bit user data: the kind in the high 32 bits, an index or fd in the low 32 (so
/// a connection's tag is its fd, as before).
enum EpollTag: Equatable, Sendable {
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
    /// Watcher: the eventfd by which the event loop asks it to park (Worker/Watcher.swift).
    case watcherWake

    @inline(__always)
    var rawValue: UInt64 {
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
        case .watcherWake: return 9 << 32
        }
    }

    /// nil for user data no registration of ours carries.
    @inline(__always)
    init?(rawValue: UInt64) {
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
        case 9: self = .watcherWake
        default: return nil
        }
    }
}

extension Epoll {
    /// EPOLL_CTL_ADD with a tag (Epoll.add, HerdSys/Epoll.swift).
    @inline(__always)
    func add(_ fd: Int32, _ events: EpollEvents, _ tag: EpollTag, what: @autoclosure () -> String? = nil) throws(SysError) {
        try add(fd, events, data: tag.rawValue, what: what())
    }

    /// EPOLL_CTL_MOD with a tag.
    @inline(__always)
    func modify(_ fd: Int32, _ events: EpollEvents, _ tag: EpollTag, what: @autoclosure () -> String? = nil) throws(SysError) {
        try modify(fd, events, data: tag.rawValue, what: what())
    }
}

extension EpollEvent {
    /// The tag of the registration that reported this event; nil for user data no registration
    /// of ours carries.
    @inline(__always)
    var tag: EpollTag? { EpollTag(rawValue: data) }
}
