import CHerdSys
import Glibc
import Handlers

/// The master's own tiny HTTP endpoint for listeners whose handler is `metrics`. The master
/// accepts on these (and only these) sockets itself, so metrics stay readable when every worker
/// is saturated. One request per connection, non-blocking, bounded in size and time; the
/// response is rendered from the scoreboard at request time.
final class MetricsServer {
    private struct Client {
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var deadline: UInt64
    }

    static let listenerTag: UInt64 = 1 << 32
    static let clientTag: UInt64 = 2 << 32

    let listeners: [Listener]
    private var clients: [Int32: Client] = [:]
    private let epfd: Int32
    private var parser = HTTPRequestParser(limits: HTTPLimits(maxRequestLine: 2048, maxHeaderBytes: 8192, maxHeaderCount: 50, maxBodyBytes: 0))

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
        if data >= MetricsServer.clientTag {
            let fd = Int32(truncatingIfNeeded: data - MetricsServer.clientTag)
            service(fd, respond: respond)
        } else {
            let i = Int(data - MetricsServer.listenerTag)
            guard i < listeners.count else { return }
            // A bounded accept loop: the master has other work, and 64 scrapers at once is plenty.
            for _ in 0..<64 {
                let fd = accept4(listeners[i].fd, nil, nil, herd_sock_nonblock() | herd_sock_cloexec())
                if fd < 0 { return }
                if herd_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, herd_epollin() | herd_epollout() | herd_epollrdhup() | herd_epollet(),
                                  MetricsServer.clientTag + UInt64(fd)) < 0 {
                    close(fd)
                    continue
                }
                clients[fd] = Client(deadline: monotonicNanos() + 5_000_000_000)
                service(fd, respond: respond)
            }
        }
    }

    private func service(_ fd: Int32, respond: (HTTPRequest) -> HTTPResponse) {
        guard var c = clients[fd] else { return }
        if c.output.isEmpty {
            var buf = [UInt8](repeating: 0, count: 4096)
            var eof = false
            while c.input.count < 16384 {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { c.input += buf[0..<n]; continue }
                if n == 0 { eof = true }
                else if errno == EINTR { continue }
                else if errno != EAGAIN && errno != EWOULDBLOCK { eof = true }
                break
            }
            parser.reset()
            let result = c.input.withUnsafeBytes { parser.parse($0) }
            let response: HTTPResponse
            var isHEAD = false
            switch result {
            case .needMore:
                if eof || c.input.count >= 16384 { drop(fd); return }
                clients[fd] = c
                return
            case .error(let status, _):
                response = HTTPResponse.errorResponse(status: status)
            case .request(let req, _):
                isHEAD = req.isHEAD
                response = respond(req)
            }
            _ = HTTPResponseHead.serialize(response, requestIsHEAD: isHEAD, keepAlive: false, versionMinor: 1,
                                           date: HTTPDate.format(epochSeconds: time(nil)), into: &c.output)
            if !isHEAD, case .bytes(let b) = response.body { c.output += b }
        }
        while c.sent < c.output.count {
            let n = c.output.withUnsafeBytes { raw in
                raw.baseAddress.map { send(fd, $0 + c.sent, c.output.count - c.sent, Int32(MSG_NOSIGNAL)) } ?? -1
            }
            if n > 0 { c.sent += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { clients[fd] = c; return }
            break
        }
        drop(fd)
    }

    private func drop(_ fd: Int32) {
        clients.removeValue(forKey: fd)
        close(fd)
    }

    /// Stops accepting (the listeners leave our epoll; the fds stay open, another master or
    /// systemd may serve them). Clients already connected are still answered.
    func stopListening() {
        for l in listeners { _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, l.fd, 0, 0) }
    }

    /// Closes clients that did not finish within their deadline.
    func sweep(now: UInt64) {
        for (fd, c) in clients where now > c.deadline { drop(fd) }
    }
}
