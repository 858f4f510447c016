import HerdLibc
import Handlers
import HerdSys
import Logging

/// The master's own tiny HTTP endpoint for listeners whose handler is `metrics`. The master
/// accepts on these (and only these) sockets itself, so metrics stay readable when every worker
/// is saturated. The connections are the workers' `HTTPConnection` (same parser, serializer,
/// buffers, write budget and timeouts), with the metrics server as their `ConnectionHost`: one
/// request per connection (`Connection: close`), small limits, 5 s to send the request; the
/// response is rendered from the scoreboard at request time by the master's `respond`.
final class MetricsServer: ConnectionRegistry {
    let listeners: [Listener]
    private var clients: [Int32: HTTPConnection<MetricsServer>] = [:]
    /// The master's epoll: listeners tagged `.metricsListener(index)`, clients
    /// `.metricsClient(fd)`, registered edge-triggered like a worker's connections (`register`,
    /// ConnectionRegistry.swift).
    let epoll: Epoll
    let log: Logger
    /// The master's renderer, set for the duration of `event` (the only place a request is served).
    private var respond: ((HTTPRequest) -> HTTPResponse)? = nil

    // ConnectionHost: what the connections read.
    private(set) var now: UInt64 = monotonicNanos()
    var httpDate: String { HTTPDate.format(epochSeconds: wallClockSeconds()) }
    /// One request per connection.
    let keepAliveAllowed = false
    let buffers = BufferPool()
    /// Small limits, no body; a scraper gets 5 s to send its request, from the accept on.
    private let settings: ConnectionSettings

    init(listeners: [Listener], epoll: Epoll, log: Logger) throws {
        self.listeners = listeners
        self.epoll = epoll
        self.log = log
        self.settings = ConnectionSettings(
            limits: HTTPLimits(maxRequestLine: 2048, maxHeaderBytes: 8192, maxHeaderCount: 50, maxBodyBytes: 0), buffers: buffers,
            requestTimeouts: RequestTimeouts(headerNanos: 5_000_000_000, bodyNanos: 5_000_000_000, bodyMinRate: 500),
            keepAliveTimeoutNanos: 5_000_000_000)
        for (i, l) in listeners.enumerated() {
            try Sys.setNonBlocking(l.fd)
            try epoll.add(l.fd, .input, .metricsListener(i), what: "metrics listener \(l.name)")
        }
    }

    /// Handles an epoll event with one of our tags. `respond` renders a path.
    func event(_ tag: EpollTag, respond: (HTTPRequest) -> HTTPResponse) {
        now = monotonicNanos()
        withoutActuallyEscaping(respond) { r in
            self.respond = r
            defer { self.respond = nil }
            switch tag {
            case .metricsClient(let fd):
                guard let conn = clients[fd] else { return }
                service(conn)
            case .metricsListener(let i):
                accept(i)
            default:
                break
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
            let fd: Int32
            switch Sys.accept(listeners[i].fd, &storage, &len) {
            case .connection(let c): fd = c
            case .wouldBlock: return
            case .failed:
                // ECONNABORTED/EPROTO: that client is gone. Out of fds (EMFILE...): the
                // level-triggered listener wakes us again; not logged, as that would be once
                // per turn of the master's loop until fds are free.
                return
            }
            let peer = withUnsafeBytes(of: &storage) { PeerAddress(sockaddr: $0, length: Int(len)) }
            let conn = HTTPConnection(fd: fd, listener: i, peer: peer, host: self, settings: settings)
            guard register(conn, what: "metrics client") else { continue }
            service(conn)
        }
    }

    /// Stops accepting (the listeners leave our epoll; the fds stay open, another master or
    /// systemd may serve them). Clients already connected are still answered.
    func stopListening() {
        for l in listeners {
            // ENOENT: already removed (a stop after a handover); anything else is worth a line.
            do { try epoll.remove(l.fd, what: "metrics listener \(l.name)") } catch {
                if error.errno != ENOENT { log.warning("metrics endpoint: \(error)", metadata: ["event": "metrics-error"]) }
            }
        }
    }

    /// Closes clients that did not send their request in time (a 408) or stopped reading.
    func sweep(now: UInt64) {
        self.now = now
        for conn in Array(clients.values) { conn.checkTimeouts(now: now, draining: false) }
    }

    // MARK: - ConnectionHost

    // The metrics endpoint answers at once (no async requests), and is never shed: it is how
    // an operator sees the overload.
    func handle(_ request: HTTPRequest, on conn: HTTPConnection<MetricsServer>) -> HostAnswer {
        .response(respond?(request) ?? HTTPResponse.errorResponse(status: 503))
    }

    /// The metrics handlers answer with bytes; a produced body (none today) is refused: it
    /// polls as failed and the connection closes.
    func startProducer(_ body: any ProducedBodyStream, for conn: HTTPConnection<MetricsServer>) { body.abandon() }
    func bodyStream(for head: HTTPRequest, on conn: HTTPConnection<MetricsServer>) -> RequestBodyStream? { nil }
    func asyncAbandoned(_ call: AsyncCall) {}
    func asyncExpired(_ conn: HTTPConnection<MetricsServer>) {}
    func responded(status: Int, to request: HTTPRequest?, startedAt: UInt64, on conn: HTTPConnection<MetricsServer>) {}
    func countBytesOut(_ n: Int) {}
    func longWrite(_ delta: Int) {}

    /// Write budget spent (a very large /metrics): EPOLL_CTL_MOD re-queues the fd as ready, as
    /// in a worker (WriteBudget.swift).
    func armOutput(_ conn: HTTPConnection<MetricsServer>) -> Bool {
        do { try epoll.modify(conn.fd, .connection, .metricsClient(conn.fd), what: "metrics client") } catch {
            log.warning("metrics endpoint: \(error)", metadata: ["event": "metrics-error"])
            return false
        }
        return true
    }

    // MARK: - ConnectionRegistry

    func enter(_ conn: HTTPConnection<MetricsServer>) -> Int {
        clients[conn.fd] = conn
        return clients.count
    }

    func connectionTag(_ fd: Int32) -> EpollTag { .metricsClient(fd) }

    /// The master's own endpoint: its scrapers' closes are not client traffic and not counted.
    func connectionClosed(_ conn: HTTPConnection<MetricsServer>, reason: CloseReason) {
        clients.removeValue(forKey: conn.fd)
    }
}
