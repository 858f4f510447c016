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

    /// An HTTP connection (worker, metrics endpoint) that waits for room to write: edge-
    /// triggered read, write and peer hang-up.
    @inlinable package static var connection: EpollEvents { [.input, .output, .readHangUp, .edgeTriggered] }
    /// An HTTP connection that never found its socket full: without EPOLLOUT, whose report at
    /// EPOLL_CTL_ADD (a new socket is writable) would cost a turn of the loop that does nothing
    /// (ConnectionRegistry.register).
    @inlinable package static var connectionInput: EpollEvents { [.input, .readHangUp, .edgeTriggered] }
}

/// One ready event from `Epoll.wait`: its bits and the 64-bit user data of its registration
/// (what the registration stands for is the caller's business: HerdD's EpollTag).
@usableFromInline package struct EpollEvent {
    @usableFromInline package let events: EpollEvents
    @usableFromInline package let data: UInt64

    @inlinable @inline(__always)
    package init(events: EpollEvents, data: UInt64) {
        self.events = events
        self.data = data
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
        return EpollEvent(events: EpollEvents(rawValue: e.events), data: e.data)
    }
}

/// An epoll instance. Every registration carries 64 bits of user data (HerdD encodes its
/// `EpollTag` there); every epoll_ctl failure is a
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
    package func add(_ fd: Int32, _ events: EpollEvents, data: UInt64, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("epoll_ctl", detail: "EPOLL_CTL_ADD \(what() ?? "fd \(fd)")") {
            herd_epoll_ctl(self.fd, EPOLL_CTL_ADD, fd, events.rawValue, data)
        }
    }

    /// EPOLL_CTL_MOD (for an edge-triggered fd: re-queues it as ready if it is).
    @inlinable @inline(__always)
    package func modify(_ fd: Int32, _ events: EpollEvents, data: UInt64, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("epoll_ctl", detail: "EPOLL_CTL_MOD \(what() ?? "fd \(fd)")") {
            herd_epoll_ctl(self.fd, EPOLL_CTL_MOD, fd, events.rawValue, data)
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
