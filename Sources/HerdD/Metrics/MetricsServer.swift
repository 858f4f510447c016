import CHerdSys
import Glibc
import Handlers

/// The master's own tiny HTTP endpoint for listeners whose handler is `metrics`. The master
/// accepts on these (and only these) sockets itself, so metrics stay readable when every worker
/// is saturated. The connections are the workers' `HTTPConnection` (same parser, serializer,
/// buffers, write budget and timeouts), with the metrics server as their `ConnectionHost`: one
/// request per connection (`Connection: close`), small limits, 5 s to send the request; the
/// response is rendered from the scoreboard at request time by the master's `respond`.
final class MetricsServer: ConnectionHost {
    static let listenerTag: UInt64 = 1 << 32
    static let clientTag: UInt64 = 2 << 32
    /// Connection events in the master's epoll: edge-triggered read, write and peer hang-up.
    private static let clientEvents = herd_epollin() | herd_epollout() | herd_epollrdhup() | herd_epollet()

    let listeners: [Listener]
    private var clients: [Int32: HTTPConnection<MetricsServer>] = [:]
    private let epfd: Int32
    /// The master's renderer, set for the duration of `event` (the only place a request is served).
    private var respond: ((HTTPRequest) -> HTTPResponse)? = nil

    // ConnectionHost: what the connections read.
    private(set) var now: UInt64 = monotonicNanos()
    let limits = HTTPLimits(maxRequestLine: 2048, maxHeaderBytes: 8192, maxHeaderCount: 50, maxBodyBytes: 0)
    let buffers = BufferPool()
    var httpDate: String { HTTPDate.format(epochSeconds: time(nil)) }
    /// A scraper gets 5 s to send its request, from the accept on.
    let headerTimeoutNanos: UInt64 = 5_000_000_000
    let keepAliveTimeoutNanos: UInt64 = 5_000_000_000
    let draining = false
    /// One request per connection.
    let keepAliveAllowed = false

    init(listeners: [Listener], epfd: Int32) throws {
        self.listeners = listeners
        self.epfd = epfd
        for (i, l) in listeners.enumerated() {
            try setNonBlocking(l.fd)
            try sys("epoll_ctl", detail: "metrics listener \(l.name)") {
                herd_epoll_ctl(epfd, EPOLL_CTL_ADD, l.fd, herd_epollin(), MetricsServer.listenerTag + UInt64(i))
            }
        }
    }

    /// Handles an epoll event whose data carries one of our tags. `respond` renders a path.
    func event(_ data: UInt64, respond: (HTTPRequest) -> HTTPResponse) {
        now = monotonicNanos()
        withoutActuallyEscaping(respond) { r in
            self.respond = r
            defer { self.respond = nil }
            if data >= MetricsServer.clientTag {
                guard let conn = clients[Int32(truncatingIfNeeded: data - MetricsServer.clientTag)] else { return }
                service(conn)
            } else {
                accept(Int(data - MetricsServer.listenerTag))
            }
        }
    }

    /// Reads and writes what the socket allows (the event's mask is not passed in: readable()
    /// reads until EAGAIN, writable() does nothing without pending output).
    private func service(_ conn: HTTPConnection<MetricsServer>) {
        conn.readable()
        if !conn.closed { conn.writable() }
    }

    private func accept(_ i: Int) {
        guard i < listeners.count else { return }
        // A bounded accept loop: the master has other work, and 64 scrapers at once is plenty.
        for _ in 0..<64 {
            var storage = sockaddr_storage()
            var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutableBytes(of: &storage) { raw in
                accept4(listeners[i].fd, raw.baseAddress?.assumingMemoryBound(to: sockaddr.self), &len, herd_sock_nonblock() | herd_sock_cloexec())
            }
            if fd < 0 { return }
            if herd_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, MetricsServer.clientEvents, MetricsServer.clientTag + UInt64(fd)) < 0 {
                close(fd)
                continue
            }
            let peer = withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0, length: Int(len)) }
            let conn = HTTPConnection(fd: fd, listener: i, peer: peer, host: self)
            clients[fd] = conn
            service(conn)
        }
    }

    /// Stops accepting (the listeners leave our epoll; the fds stay open, another master or
    /// systemd may serve them). Clients already connected are still answered.
    func stopListening() {
        for l in listeners { _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, l.fd, 0, 0) }
    }

    /// Closes clients that did not send their request in time (a 408) or stopped reading.
    func sweep(now: UInt64) {
        self.now = now
        for conn in Array(clients.values) { conn.checkTimeouts(now: now) }
    }

    // MARK: - ConnectionHost

    func handle(_ request: HTTPRequest, on conn: HTTPConnection<MetricsServer>, readyAt: UInt64) -> HTTPResponse {
        respond?(request) ?? HTTPResponse.errorResponse(status: 503)
    }

    func responded(status: Int) {}
    func requestFinished(_ request: HTTPRequest, status: Int, on conn: HTTPConnection<MetricsServer>, startedAt: UInt64) {}
    func countBytesOut(_ n: Int) {}
    func longWrite(_ delta: Int) {}

    /// Write budget spent (a very large /metrics): EPOLL_CTL_MOD re-queues the fd as ready, as
    /// in a worker (WriteBudget.swift).
    func yieldWrite(_ conn: HTTPConnection<MetricsServer>) -> Bool {
        herd_epoll_ctl(epfd, EPOLL_CTL_MOD, conn.fd, MetricsServer.clientEvents, MetricsServer.clientTag + UInt64(conn.fd)) == 0
    }

    func unregisterReceived(_ fd: Int32) {}

    func connectionClosed(_ conn: HTTPConnection<MetricsServer>) {
        clients.removeValue(forKey: conn.fd)
    }
}
