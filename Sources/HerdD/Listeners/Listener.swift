import Handlers
import HerdLibc
import HerdSys

/// A listening stream socket owned by the master and shared with every worker.
struct Listener: Sendable {
    enum Family: String, Sendable { case tcp, unix }
    var fd: Int32
    var name: String
    var family: Family
    /// Human-readable address ("127.0.0.1:8080", "unix:/run/x.sock", "fd 3").
    var address: String
    /// herdd bound it itself (not systemd's, not passed in): closed at the start of a graceful
    /// stop unless it went into systemd's fd store (see Master.prepareListeners).
    var owned = false
}

/// Where the listening sockets come from: systemd (socket activation, or a previous herdd master
/// during a hot upgrade, which uses the same protocol) or our own bind().
enum Listeners {
    struct ActivationError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    /// Takes the sockets passed with the sd_listen_fds protocol (LISTEN_PID, LISTEN_FDS,
    /// LISTEN_FDNAMES). Returns nil when none were passed. The environment variables are unset
    /// (unset_environment=1) so that workers and later children never mistake them for their own.
    static func fromActivation() throws -> [Listener]? {
        let passed = try Sys.listenFDs()
        if passed.isEmpty { return nil }
        var out: [Listener] = []
        for (fd, name) in passed {
            // Only listening stream sockets make sense for a prefork HTTP server: a datagram
            // socket or a FIFO in the .socket unit is a configuration error, say so by name.
            let isStream: Bool
            do { isStream = try Sys.isListeningStreamSocket(fd) } catch {
                throw SysError(error.call, errno: error.errno, detail: "fd \(fd) '\(name)'")
            }
            if !isStream {
                throw ActivationError(message: "passed fd \(fd) (name '\(name)') is not a listening stream socket; herdd needs ListenStream= sockets")
            }
            var family = Listener.Family.tcp
            var address = "fd \(fd)"
            if Sys.isListeningUnixSocket(fd) {
                family = .unix
                address = localAddress(fd) ?? "unix fd \(fd)"
            } else if let a = localAddress(fd) {
                address = a
            }
            out.append(Listener(fd: fd, name: name, family: family, address: address))
        }
        return out
    }

    /// socket + SO_REUSEADDR + bind + listen for one ListenSpec. The socket is CLOEXEC: only the
    /// explicit dup2 of posix_spawn hands it to workers, nothing leaks into other children.
    static func bind(_ spec: ListenSpec, backlog: Int32) throws -> Listener {
        let what = spec.description
        let sa = try SocketAddress(spec.address)
        if case .unix(let path) = spec.address {
            // A stale socket file from a previous run would make bind fail with EADDRINUSE.
            // Remove it only if it is a socket nobody accepts on (connect gives ECONNREFUSED).
            try removeStaleUnixSocket(path, sa)
        }
        let fd = try Sys.streamSocket(sa.family, what: what)
        do {
            if sa.family != AF_UNIX {
                try Sys.setOption(fd, SOL_SOCKET, SO_REUSEADDR, Int32(1), what: "SO_REUSEADDR \(what)")
            }
            if sa.family == AF_INET6 {
                // An explicit [::]:port means IPv6 only; bind 0.0.0.0 separately for IPv4.
                try Sys.setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, Int32(1), what: "IPV6_V6ONLY \(what)")
            }
            try sa.withSockaddr { try Sys.bind(fd, $0, $1, what: what) }
            try Sys.listen(fd, backlog: backlog, what: what)
        } catch { Sys.close(fd); throw error }
        return Listener(fd: fd, name: spec.name, family: sa.family == AF_UNIX ? .unix : .tcp, address: "\(spec.address)", owned: true)
    }

    private static func removeStaleUnixSocket(_ path: String, _ sa: SocketAddress) throws {
        guard let st = try? Sys.lstat(path) else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw ActivationError(message: "unix:\(path) exists and is not a socket; refusing to replace it")
        }
        let probe = try Sys.streamSocket(AF_UNIX, what: "probe unix:\(path)")
        defer { Sys.close(probe) }
        do { try sa.withSockaddr { try Sys.connect(probe, $0, $1) } } catch let e as SysError {
            // ECONNREFUSED: nobody listens; anything else: leave the file alone (bind will say).
            if e.errno == ECONNREFUSED { try Sys.unlink(path) }
            return
        }
        throw ActivationError(message: "unix:\(path) is in use by another process")
    }

    /// getsockname rendered as text.
    static func localAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        do { try Sys.localName(fd, &storage, &len) } catch { return nil }
        return withUnsafeBytes(of: &storage) { raw in PeerAddress(sockaddr: raw, length: Int(len)).description }
    }
}

/// A ListenSpec address as a sockaddr (sockaddr_in, sockaddr_in6 or sockaddr_un in a
/// sockaddr_storage), for bind and connect.
struct SocketAddress {
    let family: Int32
    private var storage = sockaddr_storage()
    private let length: socklen_t

    init(_ address: ListenSpec.Address) throws {
        switch address {
        case .ipv4(let host, let port):
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &sa.sin_addr) == 1 else {
                throw Listeners.ActivationError(message: "invalid IPv4 address '\(host)'")
            }
            family = AF_INET
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: sa) { dst.copyMemory(from: $0) } }
        case .ipv6(let host, let port):
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &sa.sin6_addr) == 1 else {
                throw Listeners.ActivationError(message: "invalid IPv6 address '\(host)'")
            }
            family = AF_INET6
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: sa) { dst.copyMemory(from: $0) } }
        case .unix(let path):
            var sa = sockaddr_un()
            sa.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            let fits = withUnsafeMutableBytes(of: &sa.sun_path) { dst -> Bool in
                guard bytes.count < dst.count else { return false }
                for (i, b) in bytes.enumerated() { dst[i] = b }
                return true
            }
            guard fits else { throw Listeners.ActivationError(message: "unix socket path too long: \(path)") }
            family = AF_UNIX
            length = socklen_t(MemoryLayout<sockaddr_un>.size)
            withUnsafeMutableBytes(of: &storage) { dst in withUnsafeBytes(of: sa) { dst.copyMemory(from: $0) } }
        }
    }

    func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>?, socklen_t) throws -> T) rethrows -> T {
        try withUnsafeBytes(of: storage) { raw in try body(sockaddrPointer(raw), length) }
    }
}
