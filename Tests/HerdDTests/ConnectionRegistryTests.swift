import Glibc
import Handlers
import Logging
import Testing
@testable import HerdD
import HerdSys

/// A host with a table and a real epoll, and nothing else: what `register` asks of a worker or
/// of the master's metrics endpoint (ConnectionRegistry.swift).
final class TableHost: ConnectionRegistry {
    let epoll: Epoll
    let log = Logger(label: "test.registry")
    var table: [Int32: HTTPConnection<TableHost>] = [:]
    var closeReasons: [CloseReason] = []

    init(epoll: Epoll) { self.epoll = epoll }

    func enter(_ conn: HTTPConnection<TableHost>) -> Int {
        table[conn.fd] = conn
        return table.count
    }
    func connectionTag(_ fd: Int32) -> EpollTag { .connection(fd) }
    func connectionClosed(_ conn: HTTPConnection<TableHost>, reason: CloseReason) {
        table[conn.fd] = nil
        closeReasons.append(reason)
    }

    // The rest of ConnectionHost: a plain host that answers every request 200.
    /// The turn's start; a test moves it on to give a connection a new turn's write budget.
    var now: UInt64 = 1_000_000_000
    let buffers = BufferPool()
    var httpDate: String { "Thu, 01 Jan 2026 00:00:00 GMT" }
    let keepAliveAllowed = true
    func handle(_ request: HTTPRequest, on conn: HTTPConnection<TableHost>) -> HostAnswer {
        .response(HTTPResponse.text(200, request.path == "/big" ? TableHost.big : "hi\n"))
    }
    /// A body larger than a socketpair's buffers: its write finds the socket full.
    static let big = String(repeating: "x", count: 4 << 20)
    func startProducer(_ body: any ProducedBodyStream, for conn: HTTPConnection<TableHost>) { body.abandon() }
    func asyncAbandoned(_ call: AsyncCall) {}
    func asyncExpired(_ conn: HTTPConnection<TableHost>) {}
    func responded(status: Int, to request: HTTPRequest?, startedAt: UInt64, on conn: HTTPConnection<TableHost>) {}
    func countBytesOut(_ n: Int) {}
    func longWrite(_ delta: Int) {}
    /// A worker's re-arm (WriteBudget.swift): EPOLLOUT by EPOLL_CTL_MOD once registered.
    func armOutput(_ conn: HTTPConnection<TableHost>) -> Bool {
        guard conn.registered else { return true }
        return (try? epoll.modify(conn.fd, .connection, .connection(conn.fd), what: "test")) != nil
    }
    func bodyStream(for head: HTTPRequest, on conn: HTTPConnection<TableHost>) -> RequestBodyStream? { nil }

    /// A connection of this host on `fd` (listener 0).
    func connection(_ fd: Int32, peer: String) -> HTTPConnection<TableHost> {
        let settings = ConnectionSettings(limits: HTTPLimits(), buffers: buffers,
                                          requestTimeouts: RequestTimeouts(headerNanos: 10_000_000_000, bodyNanos: 10_000_000_000, bodyMinRate: 500),
                                          keepAliveTimeoutNanos: 5_000_000_000)
        return HTTPConnection(fd: fd, listener: 0, peer: PeerAddress(text: peer), host: self, settings: settings)
    }
}

/// Issue 26: one way in for every connection, so each counts in the table and the memory peak
/// whatever its road (accepted, taken from the dispatch socket, kept by the watcher, a metrics
/// scraper). Before, a connection taken from the dispatch socket skipped `noteOpen`.
@Suite struct ConnectionRegistryTests {
    /// A non-blocking AF_UNIX stream pair: [connection side, client side].
    private func pair() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        try Sys.setNonBlocking(fds[0])
        return (fds[0], fds[1])
    }

    private func send(_ fd: Int32, _ s: String) {
        let bytes = Array(s.utf8)
        #expect(bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) } == bytes.count)
    }

    private func readyTags(_ epoll: Epoll) throws -> [EpollTag] {
        var list = EpollReadyList(capacity: 8)
        let n = try epoll.wait(&list, timeoutMillis: 0)
        return (0..<n).compactMap { list[$0].tag }
    }

    @Test func everyRoadCountsInTheTableAndTheMemoryPeak() throws {
        let epoll = try Epoll(what: "test")
        defer { Sys.close(epoll.fd) }
        let host = TableHost(epoll: epoll)
        var clients: [Int32] = []
        defer { for fd in clients { Sys.close(fd) } }

        // Accepted (and kept by the watcher: the same call): table, peak, epoll.
        let (a, ca) = try pair()
        clients.append(ca)
        let accepted = host.connection(a, peer: "a")
        #expect(host.register(accepted, what: "accepted"))
        #expect(accepted.registered && host.buffers.peak == 1)

        // Taken from the dispatch socket: its request is served first, then it is registered.
        let (d, cd) = try pair()
        clients.append(cd)
        send(cd, "GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        let dispatched = host.connection(d, peer: "d")
        #expect(host.register(dispatched, what: "dispatched", serveFirst: true))
        #expect(dispatched.registered && !dispatched.closed)
        #expect(host.buffers.peak == 2) // the dispatched connection counts in the peak
        #expect(host.table.count == 2)
        // Both are in the epoll, for input only: the ADD reported nothing (no request waits, and
        // no EPOLLOUT, which a new socket would report at once: ConnectionRegistry.register).
        #expect(try readyTags(epoll).isEmpty)
        send(ca, "G")
        send(cd, "G")
        let tags = try readyTags(epoll)
        #expect(Set(tags.map(\.rawValue)) == Set([EpollTag.connection(a).rawValue, EpollTag.connection(d).rawValue]))
        #expect(try readyTags(epoll).isEmpty)
        // The dispatched one's response went out before the registration.
        var buf = [UInt8](repeating: 0, count: 512)
        let n = buf.withUnsafeMutableBytes { recv(cd, $0.baseAddress, $0.count, 0) }
        #expect(n > 0 && String(decoding: buf[0..<max(0, n)], as: UTF8.self).hasPrefix("HTTP/1.1 200"))

        accepted.close(because: .clientClosed)
        dispatched.close(because: .clientClosed)
        #expect(host.table.isEmpty && host.buffers.peak == 2) // the peak holds until a reclaim
    }

    @Test func aDispatchedConnectionClosedByItsFirstRequestIsNotRegistered() throws {
        let epoll = try Epoll(what: "test")
        defer { Sys.close(epoll.fd) }
        let host = TableHost(epoll: epoll)
        let (d, cd) = try pair()
        defer { Sys.close(cd) }
        send(cd, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        let conn = host.connection(d, peer: "d")
        #expect(!host.register(conn, what: "dispatched", serveFirst: true))
        #expect(conn.closed && !conn.registered)
        #expect(host.buffers.peak == 1 && host.table.isEmpty)
        #expect(host.closeReasons == [.responseDone])
        #expect(try readyTags(epoll).isEmpty)
    }

    /// A connection is registered without EPOLLOUT and gains it (one EPOLL_CTL_MOD) when a
    /// write finds its socket full; the room the client makes is then reported.
    @Test func outputIsWatchedOnceTheSocketIsFull() throws {
        let epoll = try Epoll(what: "test")
        defer { Sys.close(epoll.fd) }
        let host = TableHost(epoll: epoll)
        let (a, ca) = try pair()
        defer { Sys.close(ca) }
        let conn = host.connection(a, peer: "a")
        #expect(host.register(conn, what: "accepted"))
        #expect(!conn.watchesOutput)
        #expect(try readyTags(epoll).isEmpty) // a writable new socket, not reported

        // A small response leaves at once: still no EPOLLOUT.
        send(ca, "GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try readyTags(epoll).map(\.rawValue) == [EpollTag.connection(a).rawValue])
        conn.readable()
        #expect(!conn.watchesOutput && !conn.hasPendingOutput)
        var buf = [UInt8](repeating: 0, count: 1 << 16)
        var got = buf.withUnsafeMutableBytes { recv(ca, $0.baseAddress, $0.count, 0) }
        #expect(got > 0)
        #expect(try readyTags(epoll).isEmpty)

        // A large one fills the socket: EPOLLOUT is added, and reported once the client reads.
        send(ca, "GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        #expect(try readyTags(epoll).map(\.rawValue) == [EpollTag.connection(a).rawValue])
        conn.readable()
        #expect(conn.watchesOutput && conn.hasPendingOutput && !conn.closed)
        #expect(try readyTags(epoll).isEmpty) // still full
        var total = 0
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            got = buf.withUnsafeMutableBytes { recv(ca, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if got > 0 { total += got; continue }
            if !conn.hasPendingOutput { break }
            // Drained what was sent: the room is reported (EPOLLOUT), and the connection writes on.
            let tags = try readyTags(epoll)
            #expect(tags.map(\.rawValue) == [EpollTag.connection(a).rawValue])
            if tags.isEmpty { break }
            host.now += 1_000_000 // a new turn of the loop
            conn.writable()
        }
        #expect(total > TableHost.big.utf8.count && !conn.hasPendingOutput && !conn.closed)
        conn.close(because: .clientClosed)
    }

    @Test func aFailedRegistrationClosesAndCountsTheConnection() throws {
        let host = TableHost(epoll: .none) // every epoll_ctl fails (EBADF)
        let (a, ca) = try pair()
        defer { Sys.close(ca) }
        let conn = host.connection(a, peer: "a")
        #expect(!host.register(conn, what: "accepted"))
        #expect(conn.closed && !conn.registered && host.table.isEmpty)
        #expect(host.closeReasons == [.internalError])
        // Closed: the client reads EOF.
        var byte: UInt8 = 0
        #expect(recv(ca, &byte, 1, 0) == 0)
    }
}
