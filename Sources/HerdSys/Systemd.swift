import CHerdSys
import Glibc

// libsystemd (sd-daemon, sd-journal): the calls herdd makes to the service manager and the
// journal. They return -errno instead of setting errno; a SysError carries that errno. Without
// $NOTIFY_SOCKET or $LISTEN_FDS they do nothing, so herdd runs the same by hand.
extension Sys {
    /// sd_notify(3): true when the message was sent, false without NOTIFY_SOCKET.
    /// unset_environment=0: the master keeps NOTIFY_SOCKET for later messages.
    @usableFromInline package static func notify(_ state: String) throws(SysError) -> Bool {
        let r = sd_notify(0, state)
        if r < 0 { throw SysError("sd_notify", errno: -r) }
        return r > 0
    }

    /// sd_pid_notify_with_fds(3) with one fd ("FDSTORE=1\nFDNAME=..."): the service manager keeps
    /// a duplicate of `fd` across restarts of the service.
    @usableFromInline package static func notify(_ state: String, storing fd: Int32) throws(SysError) {
        var fd = fd
        let r = sd_pid_notify_with_fds(0, 0, state, &fd, 1)
        if r < 0 { throw SysError("sd_pid_notify_with_fds", errno: -r, detail: state) }
    }

    /// sd_watchdog_enabled(3): the keep-alive interval in microseconds when systemd asked for
    /// WATCHDOG=1 pings (WatchdogSec=), else nil.
    @usableFromInline package static func watchdogInterval() throws(SysError) -> UInt64? {
        var usec: UInt64 = 0
        let r = sd_watchdog_enabled(0, &usec)
        if r < 0 { throw SysError("sd_watchdog_enabled", errno: -r) }
        return r > 0 && usec > 0 ? usec : nil
    }

    /// sd_listen_fds_with_names(3): the sockets passed by socket activation, as (fd, name), in
    /// order from SD_LISTEN_FDS_START; empty when none were passed. unset_environment=1: LISTEN_PID,
    /// LISTEN_FDS and LISTEN_FDNAMES are removed so that no child mistakes them for its own.
    @usableFromInline package static func listenFDs() throws(SysError) -> [(fd: Int32, name: String)] {
        var namesPtr: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = nil
        let n = sd_listen_fds_with_names(1, &namesPtr)
        if n < 0 { throw SysError("sd_listen_fds_with_names", errno: -n) }
        defer {
            if let namesPtr {
                var i = 0
                while let p = namesPtr[i] { free(p); i += 1 }
                free(namesPtr)
            }
        }
        var out: [(fd: Int32, name: String)] = []
        for i in 0..<Int(n) {
            var name = "unknown"
            if let namesPtr, let p = namesPtr[i] { name = String(cString: p) }
            out.append((SD_LISTEN_FDS_START + Int32(i), name))
        }
        return out
    }

    /// sd_is_socket(3): whether `fd` is a listening stream socket (any family).
    @usableFromInline package static func isListeningStreamSocket(_ fd: Int32) throws(SysError) -> Bool {
        let r = sd_is_socket(fd, AF_UNSPEC, herd_sock_stream(), 1)
        if r < 0 { throw SysError("sd_is_socket", errno: -r, detail: "fd \(fd)") }
        return r > 0
    }

    /// sd_is_socket_unix(3): whether `fd` is a listening unix stream socket (false on any error:
    /// the caller has checked it is a listening stream socket).
    @usableFromInline package static func isListeningUnixSocket(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, herd_sock_stream(), 1, nil, 0) > 0
    }

    /// sd_journal_sendv(3): one journal entry of "FIELD=value" strings. (sd_journal_send is
    /// C-variadic and cannot be called from Swift.) One contiguous buffer holds every field;
    /// the iovecs point into it for the call.
    @usableFromInline package static func journalSend(_ fields: [String]) throws(SysError) {
        let encoded = fields.map { Array($0.utf8) }
        let total = encoded.reduce(0) { $0 + $1.count }
        let buf = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { buf.deallocate() }
        var iov = [iovec]()
        iov.reserveCapacity(encoded.count)
        var off = 0
        for field in encoded {
            field.withUnsafeBytes { src in
                if let s = src.baseAddress { (buf + off).copyMemory(from: s, byteCount: src.count) }
            }
            iov.append(iovec(iov_base: buf + off, iov_len: field.count))
            off += field.count
        }
        let r = sd_journal_sendv(iov, Int32(iov.count))
        if r < 0 { throw SysError("sd_journal_sendv", errno: -r) }
    }
}
