/// What a worker knows about its connections' road in and their requests' wait, kept by the
/// worker (not by `HTTPConnection`, which only speaks HTTP):
///
/// - `readySince`: when a connection's first request became ready somewhere else than in this
///   turn: in the kernel's accept queue (TCP_INFO, --max-queue-time), or when another worker's
///   watcher saw it readable and handed it over. Its queue time (and the shedding verdict)
///   counts from then; taken by the first request, later ones wait from the turn that reads them.
/// - `received`: taken from the dispatch socket. Its sender may still hold the file for a
///   moment, and an epoll registration lives as long as the file, not the fd: before our close,
///   the registration must be removed by hand (Worker.unregisterReceived).
/// - `lastHandlerEnd`: the end of the last handler of this turn, or the turn's start before the
///   first: when the next handler starts, as far as its request's queue time goes (pipelined and
///   batched requests wait for the earlier ones).
///
/// Keyed by fd: an entry lives from the connection's arrival to its close (`remove`), so a
/// later connection on the same fd number never inherits one. Most connections have none
/// (accepted, nothing known of their wait), and the lookups are skipped while both are empty.
struct DispatchState {
    private(set) var readySince: [Int32: UInt64] = [:]
    private(set) var received: Set<Int32> = []
    private(set) var lastHandlerEnd: UInt64 = 0

    /// A connection on `fd` arrived: `readySince` (0: unknown, the turn that reads it), and
    /// whether it came from the dispatch socket.
    mutating func arrived(_ fd: Int32, readySince since: UInt64, received fromDispatch: Bool = false) {
        if since != 0 { readySince[fd] = since }
        if fromDispatch { received.insert(fd) }
    }

    /// When the request about to be served on `fd` became ready: its connection's `readySince`
    /// the first time (taken), else `turnStart` (the turn that read it).
    mutating func takeReadyAt(_ fd: Int32, turnStart: UInt64) -> UInt64 {
        if readySince.isEmpty { return turnStart }
        return readySince.removeValue(forKey: fd) ?? turnStart
    }

    /// Microseconds from `readyAt` to the start of the next handler (0 if the clocks disagree).
    func queueMicros(readyAt: UInt64) -> UInt64 {
        lastHandlerEnd > readyAt ? (lastHandlerEnd - readyAt) / 1000 : 0
    }

    /// A new turn of the loop started at `now`.
    mutating func beginTurn(at now: UInt64) { lastHandlerEnd = now }

    /// A handler (sync, or the start of an async one's answer) ended at `end`.
    mutating func handlerEnded(at end: UInt64) { lastHandlerEnd = end }

    /// The connection on `fd` is gone: forgets it. True if it came from the dispatch socket
    /// (then, if its fd is still open, its epoll registration must be removed before the close).
    @discardableResult
    mutating func remove(_ fd: Int32) -> Bool {
        if !readySince.isEmpty { readySince.removeValue(forKey: fd) }
        return received.isEmpty ? false : received.remove(fd) != nil
    }
}
