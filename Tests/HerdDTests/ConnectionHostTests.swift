import Glibc
import Handlers
import Synchronization
import Testing
@testable import HerdD
import HerdSys

/// A host with no worker, no epoll and no scoreboard: what `HTTPConnection` asks of its host
/// is exactly `ConnectionHost` (and its settings at init), so a connection runs on a
/// socketpair with this alone.
final class RecordingHost: ConnectionHost {
    var now: UInt64 = 1_000_000_000
    let limits = HTTPLimits()
    let buffers = BufferPool()
    var httpDate: String { "Thu, 01 Jan 2026 00:00:00 GMT" }
    let requestTimeouts = RequestTimeouts(headerNanos: 10_000_000_000, bodyNanos: 10_000_000_000, bodyMinRate: 500)
    var headerTimeoutNanos: UInt64 { requestTimeouts.headerNanos }
    let keepAliveTimeoutNanos: UInt64 = 5_000_000_000
    var keepAliveAllowed = true

    /// A connection of this host on `fd` (listener 0), with these limits and timeouts; its
    /// bodies may stream if `streamPaths` is set by then.
    func connection(_ fd: Int32) -> HTTPConnection<RecordingHost> {
        let settings = ConnectionSettings(limits: limits, buffers: buffers, requestTimeouts: requestTimeouts,
                                          keepAliveTimeoutNanos: keepAliveTimeoutNanos, bodiesMayStream: [!streamPaths.isEmpty])
        return HTTPConnection(fd: fd, listener: 0, peer: PeerAddress(text: "unix"), host: self, settings: settings)
    }

    var handledPaths: [String] = []
    var statuses: [Int] = []
    var finished = 0
    var bytesOut = 0
    var closed: [Int32] = []
    var closeReasons: [CloseReason] = []
    /// Per `connectionClosed`: whether the connection's fd was still open when it was told.
    var fdOpenAtClose: [Bool] = []
    /// Paths answered 503 without their handler, as --max-queue-time does.
    var refusedPaths: Set<String> = []
    /// The producer of `/produced`'s body (StreamedBody), and its wake-ups so far.
    var producer: StreamedBody.Producer? = nil
    let wakes = AtomicCount()

    func handle(_ request: HTTPRequest, on conn: HTTPConnection<RecordingHost>) -> HostAnswer {
        if refusedPaths.contains(request.path) { return .refused(.errorResponse(status: 503)) }
        handledPaths.append(request.path)
        if streamPaths.contains(request.path) {
            // Answered later by the test (conn.finishAsync), as the worker's task would.
            conn.asyncCall = AsyncCall(request: request, work: { .text(200, "late\n") }, startedAt: now, readyAt: now, deadline: now + 60_000_000_000)
            return .pending
        }
        if request.path == "/produced", let producer {
            return .response(HTTPResponse(status: 200, body: .stream(StreamedBody(producer))))
        }
        return .response(HTTPResponse.text(200, "hi \(request.path)\n"))
    }
    func startProducer(_ body: any ProducedBodyStream, for conn: HTTPConnection<RecordingHost>) {
        let wakes = self.wakes
        body.start(on: globalConcurrentExecutor) { wakes.add() }
    }
    /// Paths whose request bodies stream in (ConnectionBodyInTests), and their streams.
    var streamPaths: Set<String> = []
    var bodiesIn: [RequestBodyStream] = []
    let roomWakes = AtomicCount()
    func bodyStream(for head: HTTPRequest, on conn: HTTPConnection<RecordingHost>) -> RequestBodyStream? {
        guard streamPaths.contains(head.path) else { return nil }
        let body = RequestBodyStream()
        bodiesIn.append(body)
        let wakes = roomWakes
        body.onRoom { wakes.add() }
        return body
    }
    var abandoned: [AsyncCall] = []
    func asyncAbandoned(_ call: AsyncCall) { abandoned.append(call) }
    func asyncExpired(_ conn: HTTPConnection<RecordingHost>) {}
    func responded(status: Int, to request: HTTPRequest?, startedAt: UInt64, on conn: HTTPConnection<RecordingHost>) {
        statuses.append(status)
        if request != nil { finished += 1 }
    }
    func countBytesOut(_ n: Int) { bytesOut += n }
    func longWrite(_ delta: Int) {}
    func armOutput(_ conn: HTTPConnection<RecordingHost>) -> Bool { true }
    func connectionClosed(_ conn: HTTPConnection<RecordingHost>, reason: CloseReason) {
        closed.append(conn.fd)
        closeReasons.append(reason)
        fdOpenAtClose.append(fcntl(conn.fd, F_GETFD) != -1)
    }
}

/// A counter other threads bump (a producer's wake-ups, its end).
final class AtomicCount: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// A non-blocking AF_UNIX stream pair: [connection side, client side].
func socketPair() throws -> (Int32, Int32) {
    var fds: [Int32] = [-1, -1]
    let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds)
    #expect(rc == 0)
    try Sys.setNonBlocking(fds[0])
    try Sys.setNonBlocking(fds[1])
    return (fds[0], fds[1])
}

/// Everything the peer sent that is there now, as text.
func receiveAll(_ fd: Int32) -> String {
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

@Suite struct ConnectionHostTests {
    private func send(_ fd: Int32, _ s: String) {
        let bytes = Array(s.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        #expect(n == bytes.count)
    }


    @Test func pipelinedRequestsGoThroughTheHostOnly() throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        let conn = host.connection(server)
        send(client, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.readable()
        let reply = receiveAll(client)
        #expect(host.handledPaths == ["/a", "/b"])
        #expect(host.statuses == [200, 200])
        #expect(host.finished == 2)
        #expect(host.bytesOut == reply.utf8.count)
        #expect(reply.components(separatedBy: "HTTP/1.1 200 OK\r\n").count == 3)
        #expect(reply.contains("Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"))
        #expect(reply.hasSuffix("hi /b\n"))
        #expect(conn.isIdle && !conn.closed)
        // Idle past the host's keep-alive timeout: the sweep closes it and tells the host.
        conn.checkTimeouts(now: host.now + host.keepAliveTimeoutNanos + 1, draining: false)
        #expect(conn.closed)
        #expect(host.closed == [server])
        #expect(host.closeReasons == [.keepAliveTimeout])
    }

    /// Waits (bounded) until the host saw more than `seen` wake-ups from a body's producer.
    private func awaitWake(_ host: RecordingHost, after seen: Int) async throws {
        for _ in 0..<400 where host.wakes.value <= seen { try await Task.sleep(for: .milliseconds(5)) }
        #expect(host.wakes.value > seen, "no wake-up from the producer")
    }

    /// A produced body goes out as its producer writes (chunked), the connection waits for it
    /// without a stall timeout, and stays usable for keep-alive after the last chunk.
    @Test func producedBodyGoesOutAsItIsWritten() async throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        let (lines, feed) = AsyncStream<String>.makeStream()
        host.producer = { writer in for await line in lines { try await writer.write(line) } }
        let conn = host.connection(server)
        // A pipelined request waits for the produced body's end.
        send(client, "GET /produced HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.readable()
        let head = receiveAll(client)
        #expect(host.handledPaths == ["/produced"])
        #expect(head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.contains("Transfer-Encoding: chunked\r\n") && head.hasSuffix("\r\n\r\n"))
        #expect(!conn.isIdle && !conn.closed)
        // The producer is slow, not the client: no write-stall close however long it waits.
        conn.checkTimeouts(now: host.now + 120_000_000_000, draining: false)
        #expect(!conn.closed)
        feed.yield("one")
        try await awaitWake(host, after: 0)
        conn.producerWoke()
        #expect(receiveAll(client) == "3\r\none\r\n")
        let seen = host.wakes.value
        feed.finish()
        try await awaitWake(host, after: seen)
        conn.producerWoke()
        let rest = receiveAll(client)
        #expect(rest.hasPrefix("0\r\n\r\nHTTP/1.1 200 OK\r\n") && rest.hasSuffix("hi /after\n"), "\(rest)")
        #expect(host.handledPaths == ["/produced", "/after"])
        #expect(conn.isIdle && !conn.closed && host.finished == 2)
        conn.close(because: .clientClosed)
    }

    /// The connection closes while the producer still writes: the producer's writes throw.
    @Test func closingAbandonsTheProducer() async throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        let ended = AtomicCount()
        host.producer = { writer in
            defer { ended.add() }
            while true {
                try await writer.write("tick")
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        let conn = host.connection(server)
        send(client, "GET /produced HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.readable()
        try await awaitWake(host, after: 0)
        conn.close(because: .clientClosed)
        for _ in 0..<400 where ended.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(ended.value == 1)
        #expect(host.closeReasons == [.clientClosed])
    }

    @Test func keepAliveRefusedByTheHostClosesAfterTheResponse() throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        host.keepAliveAllowed = false
        let conn = host.connection(server)
        send(client, "GET /only HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.readable()
        let reply = receiveAll(client)
        #expect(reply.contains("Connection: close\r\n"))
        #expect(conn.closed)
        #expect(host.closed == [server])
        #expect(host.closeReasons == [.responseDone])
    }

    @Test func partialRequestGets408AtTheHostsHeaderTimeout() throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        let conn = host.connection(server)
        send(client, "GET /slow HTTP/1.1\r\nHost: x\r\n")
        conn.readable()
        #expect(host.handledPaths.isEmpty)
        conn.checkTimeouts(now: host.now + host.headerTimeoutNanos - 1, draining: false)
        #expect(receiveAll(client).isEmpty)
        conn.checkTimeouts(now: host.now + host.headerTimeoutNanos + 1, draining: false)
        #expect(receiveAll(client).hasPrefix("HTTP/1.1 408 "))
        #expect(host.statuses == [408])
        #expect(host.finished == 0)
        // It lingers for the client to read the 408; the client's EOF ends it, and the close
        // is booked under the decision (the timeout), not under the EOF.
        #expect(!conn.closed)
        Glibc.shutdown(client, Int32(SHUT_WR))
        conn.readable()
        #expect(conn.closed)
        #expect(host.closed == [server])
        #expect(host.closeReasons == [.headerTimeout])
    }

    /// Every way a connection ends names its reason (issue 24).
    @Test func closeReasons() throws {
        func run(_ body: (HTTPConnection<RecordingHost>, Int32, RecordingHost) -> Void) throws -> [CloseReason] {
            let (server, client) = try socketPair()
            let host = RecordingHost()
            let conn = host.connection(server)
            body(conn, client, host)
            close(client)
            return host.closeReasons
        }
        // The client closes between requests.
        #expect(try run { conn, client, _ in
            Glibc.shutdown(client, Int32(SHUT_WR))
            conn.readable()
        } == [.clientClosed])
        // A malformed request: 400, then the linger ends at the client's EOF.
        var reply = ""
        let garbage = try run { conn, client, _ in
            send(client, "GARBAGE\r\n\r\n")
            conn.readable()
            reply = receiveAll(client)
            Glibc.shutdown(client, Int32(SHUT_WR))
            conn.readable()
        }
        #expect(reply.hasPrefix("HTTP/1.1 400 "))
        #expect(garbage == [.protocolError])
        // The same, with the linger ended by its deadline instead.
        #expect(try run { conn, client, host in
            send(client, "GARBAGE\r\n\r\n")
            conn.readable()
            conn.checkTimeouts(now: host.now + 3_000_000_000, draining: false)
        } == [.protocolError])
        // Idle while the host drains, past DrainPolicy's grace.
        #expect(try run { conn, _, host in
            conn.checkTimeouts(now: host.now + DrainPolicy.idleNanos, draining: true)
        } == [.drain])
        // Handed to another worker.
        #expect(try run { conn, _, _ in conn.handedOff() } == [.handOff])
    }

    /// A request the host refuses (--max-queue-time's 503): its handler does not run, the 503
    /// is counted with the request (latency, access log), and the connection closes after it
    /// without serving what was pipelined behind.
    @Test func aRefusedRequestIsAnsweredAndTheConnectionCloses() throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        host.refusedPaths = ["/late"]
        let conn = host.connection(server)
        send(client, "GET /late HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.readable()
        let reply = receiveAll(client)
        #expect(reply.hasPrefix("HTTP/1.1 503 ") && reply.contains("Connection: close\r\n"))
        #expect(!reply.contains("hi /next"))
        #expect(host.handledPaths.isEmpty && host.statuses == [503] && host.finished == 1)
        // Lingers for the unread pipelined request; the client's EOF ends it.
        Glibc.shutdown(client, Int32(SHUT_WR))
        conn.readable()
        #expect(conn.closed && host.closeReasons == [.responseDone])
    }

    /// `close` tells the host while its fd is still open (a worker removes the epoll
    /// registration of a connection from the dispatch socket then: DispatchState.swift), and
    /// closes it after.
    @Test func closeTellsTheHostBeforeTheFdCloses() throws {
        let (server, client) = try socketPair()
        defer { close(client) }
        let host = RecordingHost()
        let conn = host.connection(server)
        conn.close(because: .clientClosed)
        #expect(host.fdOpenAtClose == [true])
        #expect(fcntl(server, F_GETFD) == -1)
    }

    @Test func labelsRoundTripAndFitTheirScoreboardWords() {
        for r in CloseReason.allCases { #expect(CloseReason(label: r.label) == r) }
        #expect(Set(CloseReason.allCases.map(\.label)).count == CloseReason.allCases.count)
        #expect(Scoreboard.closeBase > Scoreboard.Field.asyncDrainCancelled.rawValue)
        #expect(Scoreboard.closeBase + CloseReason.allCases.count <= Scoreboard.listenerBase)
    }
}
