import HerdSys

/// Fairness of writing (issue 14): a connection writes at most `ConnectionTuning.writeBudget` bytes per
/// turn of the event loop, then yields so epoll_wait, the heartbeat and the other connections of
/// the worker get their turn; a worker that has such a long response in progress shows as busy.
extension Worker {
    /// `conn` stopped writing with its budget spent while the socket would take more. Edge-
    /// triggered epoll reports no new EPOLLOUT for a socket that stayed writable, so re-arm it:
    /// EPOLL_CTL_MOD with the same events queues the fd as ready again when it is (ep_modify
    /// polls it), and the next epoll_wait returns it after the events already waiting: one
    /// syscall per budget, nothing to keep in the worker's loop. Returns false if epoll_ctl failed.
    /// The same MOD adds EPOLLOUT the first time a write finds the socket full (connections are
    /// registered without it: ConnectionRegistry.register); room that came between the EAGAIN
    /// and the MOD is reported, as the MOD polls the socket.
    func armOutput(_ conn: Connection) -> Bool {
        // Served before its registration (a connection taken from the dispatch socket is served
        // at once, then added: Worker.adopt): nothing to re-arm, and nothing needed, as the
        // EPOLL_CTL_ADD that follows polls the socket and reports it writable. (MOD here failed
        // with ENOENT and cut the response after its first turn: issue 24.)
        guard conn.registered else { return true }
        do { try epoll.modify(conn.fd, .connection, .connection(conn.fd), what: "re-arming a connection") } catch {
            log.error("\(error)", metadata: ["event": "write-yield-error"])
            return false
        }
        return true
    }

    /// A connection started (+1) or finished (-1) a response that takes more than one turn: the
    /// worker is busy while any does (the scoreboard, `herdd status`, the master's pool sizing).
    func longWrite(_ delta: Int) {
        longWrites += delta
        scoreboard.store(slot, .state, workerState.rawValue)
    }

    /// The state a worker outside a handler shows.
    var workerState: Scoreboard.State {
        draining ? .draining : (longWrites > 0 ? .busy : .idle)
    }
}
