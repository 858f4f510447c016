import HerdSys
import Logging

/// A host that keeps a table of its connections and watches them in its epoll: a worker
/// (accepted connections, those taken from the dispatch socket, those its watcher kept) and the
/// master's metrics endpoint. `register` below is the one way a connection becomes a host's,
/// so every connection counts in the table, the open count and the memory peak (BufferPool's
/// `noteOpen`, which decides when memory is given back) the same way, whatever its road in.
protocol ConnectionRegistry: ConnectionHost {
    var epoll: Epoll { get }
    var log: Logger { get }
    /// The pool its connections' settings lend from (`noteOpen`: the memory peak).
    var buffers: BufferPool { get }
    /// Enters `conn` in the host's table and counts; returns how many connections are open now.
    func enter(_ conn: HTTPConnection<Self>) -> Int
    /// The epoll tag of a connection of this host (`.connection(fd)` in a worker).
    func connectionTag(_ fd: Int32) -> EpollTag
}

extension ConnectionRegistry {
    /// Makes `conn` (a fresh connection on its fd) the host's: the table and counts, then the
    /// host's epoll. Edge-triggered: the connection always reads and writes until EAGAIN, so one
    /// registration serves its whole life with no EPOLL_CTL_MOD per request; EPOLL_CTL_ADD
    /// reports what is ready already (input that came before it).
    ///
    /// Without EPOLLOUT until a write finds the socket full (`armOutput`): a new socket is
    /// writable, so an ADD with EPOLLOUT queues an event at once, and the next epoll_wait
    /// returns for nothing to do (strace of a 1 MB `Connection: close` load: 2.7 epoll_wait and
    /// 11.1 system calls per response against nginx's 1.7 and 8.9, which registers EPOLLIN
    /// alone). Most responses leave in the write that follows their request.
    ///
    /// `serveFirst`: serve the request that made it readable before the registration (a
    /// connection taken from the dispatch socket: Worker.adopt says why).
    ///
    /// Returns false if the connection is closed by the end: served and closed (`serveFirst`),
    /// or epoll_ctl failed (then it is closed and counted as an internal error).
    func register(_ conn: HTTPConnection<Self>, what: @autoclosure () -> String, serveFirst: Bool = false) -> Bool {
        buffers.noteOpen(enter(conn))
        if serveFirst {
            conn.readable()
            guard !conn.closed else { return false }
        }
        // A response still waiting (served first, its socket full): with EPOLLOUT, whose report
        // at the ADD is then the wake-up it needs.
        do { try epoll.add(conn.fd, conn.watchesOutput ? .connection : .connectionInput, connectionTag(conn.fd), what: what()) } catch {
            log.error("\(error)", metadata: ["event": "register-error"])
            conn.close(because: .internalError)
            return false
        }
        conn.registered = true
        return true
    }
}
