import HerdLibc
import HerdSys

extension Master {
    /// Listener preparation, once at start: which sockets are herdd's own (closed at a stop),
    /// fds moved high, TCP_NODELAY set. Returns the listeners with their new fds.
    static func prepareListeners(_ listeners: [Listener], handover: UpgradeHandover?) throws -> [Listener] {
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
        return moved
    }
}
