import HerdLibc
import HerdSys

extension Master {
    /// Listener preparation, once at start: which sockets are herdd's own (closed at a stop),
    /// fds moved high, TCP_NODELAY and TCP_DEFER_ACCEPT set. Returns the listeners with their new fds.
    static func prepareListeners(_ listeners: [Listener], handover: UpgradeHandover?, deferAccept: Bool) throws -> [Listener] {
        // Keep listener fds at Spawn.firstPrivateFD and above so the dup2 to 3, 4, ... in posix_spawn never overwrites
        // a source that has not been copied yet. F_DUPFD_CLOEXEC: only the spawn's dup2 makes
        // them inheritable.
        var moved: [Listener] = []
        for var l in listeners {
            // Ours alone: bound by us and not in systemd's fd store, or (after an upgrade) the
            // old master's own sockets.
            l.owned = handover.map { $0.ownedListeners.contains(l.name) } ?? (l.owned && !SystemdNotify.hasNotifySocket)
            l.fd = try Sys.moveAbove(l.fd, Spawn.firstPrivateFD, what: l.name)
            moved.append(l)
        }
        // TCP_NODELAY once on each TCP listener: accepted sockets inherit it on Linux, which
        // saves workers a setsockopt per connection. Responses go out in one write; Nagle
        // would only hold back the tail of pipelined or streamed responses.
        for l in moved where l.family == .tcp {
            try Sys.setOption(l.fd, Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1), what: "TCP_NODELAY \(l.name)")
        }
        try setDeferAccept(moved, on: deferAccept)
        return moved
    }

    /// TCP_DEFER_ACCEPT on every TCP listener (config `defer-accept`; at start, on a reload that
    /// changes it, and by a hot upgrade's new master). The socket is shared with the workers, so
    /// setting it here is enough. 1 s, as nginx's `deferred`: the kernel ignores the handshake's
    /// last ACK and queues the connection for accept when data arrives, or when the client
    /// answers the first SYN-ACK retransmission (~1 s) still silent. A worker then wakes once per
    /// connection and its first read finds the request (Worker+Connections' early read), where
    /// it otherwise woke to accept, registered the socket, and woke again to read. 0 turns it off,
    /// including a `DeferAcceptSec=` that a .socket unit set: the config decides.
    static func setDeferAccept(_ listeners: [Listener], on: Bool) throws {
        for l in listeners where l.family == .tcp {
            try Sys.setOption(l.fd, Int32(IPPROTO_TCP), TCP_DEFER_ACCEPT, Int32(on ? 1 : 0), what: "TCP_DEFER_ACCEPT \(l.name)")
        }
    }
}
