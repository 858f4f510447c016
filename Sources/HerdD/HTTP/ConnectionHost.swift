import Handlers

/// Everything an `HTTPConnection` needs from the event loop that owns it, and nothing more.
///
/// A connection drives HTTP/1.1 on one socket (HerdHTTP's parser and serializer, the buffers,
/// sendfile, timeouts, close); its host owns the epoll set, the clock, the handler and the
/// counters. What the host fixes for all its connections (limits, buffer pool, timeouts) is
/// given to each at its init (`ConnectionSettings`); what changes, or is done by the host, is
/// asked through the requirements below, and nothing else.
///
/// The host calls the connection's `readable()`, `writable()`, `checkTimeouts(now:draining:)`,
/// `drain()`, `handedOff()`, `forget(because:)`, `close(because:)`, `finishAsync(_:)` and
/// `producerWoke()`, reads `isIdle`/`closed`, and sets `peerHangUpReported`, `registered`, `watchesOutput` and
/// `asyncCall`. What the worker knows about a connection's road in (when its first request
/// became ready elsewhere, whether it came from the dispatch socket) is the worker's
/// (Worker/DispatchState.swift), not the connection's.
/// A worker process (Worker/Worker.swift) is the host of its connections; the master's metrics
/// endpoint (Metrics/MetricsServer.swift) is another.
///
/// The connection is generic over its host rather than holding an `any ConnectionHost`: every
/// call below is a direct (specialized, inlinable) call on the concrete host type, as it was
/// when the connection held the `Worker` itself. No existential dispatch on the hot path.
protocol ConnectionHost: AnyObject {
    // MARK: the moment

    /// Start of the current turn of the event loop (monotonic nanoseconds): the time of every
    /// read in the turn, the key of the per-turn write budget, a request's start.
    var now: UInt64 { get }
    /// The `Date` field value for the current second.
    var httpDate: String { get }
    /// Whether the response being queued may keep its connection open (not while draining).
    var keepAliveAllowed: Bool { get }

    // MARK: requests

    /// Runs the handler for `request`, unless the host refuses it first (--max-queue-time).
    /// `.pending`: the request is served asynchronously (the host set `conn.asyncCall`, and
    /// calls `conn.finishAsync` with the response later).
    func handle(_ request: HTTPRequest, on conn: HTTPConnection<Self>) -> HostAnswer
    /// The stream the body of `head` goes to if its handler takes it while it arrives (asked
    /// once per such head, only where `ConnectionSettings.bodiesMayStream` says so), wired so
    /// that its reader's room after a pause calls `conn.producerWoke()` on the loop thread.
    /// Nil: the body is gathered as usual.
    func bodyStream(for head: HTTPRequest, on conn: HTTPConnection<Self>) -> RequestBodyStream?
    /// A response was queued with `status`: the counters. `request`: the request whose handler
    /// (or refusal) answered, with `startedAt` the start of its serving: latency, access log.
    /// Nil for the connection's own error answers (400, 408, 413, ...), which ran no handler.
    func responded(status: Int, to request: HTTPRequest?, startedAt: UInt64, on conn: HTTPConnection<Self>)

    /// The connection closed, or gave the request up, while waiting for `call`'s response: cancel it.
    func asyncAbandoned(_ call: AsyncCall)
    /// The sweep found the connection's async request past its deadline.
    func asyncExpired(_ conn: HTTPConnection<Self>)

    // MARK: writing

    /// `n` bytes went out on the socket.
    func countBytesOut(_ n: Int)
    /// A response started (+1) or finished (-1) writing over more than one turn.
    func longWrite(_ delta: Int)
    /// `conn` queued a response whose body has a producer (StreamedBody): start it on the
    /// loop, with a wake-up that calls `conn.producerWoke()` on the loop thread.
    func startProducer(_ body: any ProducedBodyStream, for conn: HTTPConnection<Self>)
    /// Report `conn` writable (EPOLLOUT) when it is: called when it spent its write budget with
    /// the socket still writable (have it called again on a later turn), and the first time a
    /// write found its socket full (its registration gains EPOLLOUT: `watchesOutput`). False if
    /// that failed (the connection then closes).
    func armOutput(_ conn: HTTPConnection<Self>) -> Bool

    // MARK: close

    /// `conn` is done for `reason`: forget it, count and log the reason. Called by `close`
    /// while its fd is still open (it is closed right after: a host with a second reference to
    /// the file, like a connection taken from the dispatch socket, removes its epoll
    /// registration now), and by `forget`, whose fd is gone already.
    func connectionClosed(_ conn: HTTPConnection<Self>, reason: CloseReason)
}

/// What a host's `handle` did with a request.
enum HostAnswer {
    /// The handler's response (keep-alive if the request and `keepAliveAllowed` say so).
    case response(HTTPResponse)
    /// Refused without running the handler (--max-queue-time's 503): the connection closes
    /// after it.
    case refused(HTTPResponse)
    /// The handler answers later: the host set `conn.asyncCall` (Worker/AsyncRequests.swift).
    case pending
}

/// What a host fixes for all its connections, given to each at its init (one shared object, so
/// a connection holds one reference for it, and no call per use).
final class ConnectionSettings {
    /// Parser limits for the connection's requests.
    let limits: HTTPLimits
    /// Stop reading when this much unparsed input is buffered (back-pressure on pipelining).
    let maxBuffered: Int
    /// Input/output buffers and parser states lent to connections while a request is in progress.
    let buffers: BufferPool
    /// How long a request's head and body may take to arrive (RequestTimeouts.swift).
    let requestTimeouts: RequestTimeouts
    /// How long an idle keep-alive connection stays open, in nanoseconds.
    let keepAliveTimeoutNanos: UInt64
    /// Per listener: whether its handler may stream request bodies; then the parser stops after
    /// a head with a body, for `ConnectionHost.bodyStream` to decide (Connection+BodyIn.swift).
    let bodiesMayStream: [Bool]
    /// Per listener: the TCP_NOTSENT_LOWAT its connections get the first time their socket is
    /// full (config `notsent-lowat`; 0 = the system's, and for Unix sockets).
    let notsentLowat: [Int32]

    init(limits: HTTPLimits, buffers: BufferPool, requestTimeouts: RequestTimeouts, keepAliveTimeoutNanos: UInt64,
         bodiesMayStream: [Bool] = [], notsentLowat: [Int32] = []) {
        self.limits = limits
        self.maxBuffered = limits.maxHeaderBytes + limits.maxBodyBytes + 65536
        self.buffers = buffers
        self.requestTimeouts = requestTimeouts
        self.keepAliveTimeoutNanos = keepAliveTimeoutNanos
        self.bodiesMayStream = bodiesMayStream
        self.notsentLowat = notsentLowat
    }

    func notsentLowat(on listener: Int) -> Int32 {
        listener >= 0 && listener < notsentLowat.count ? notsentLowat[listener] : 0
    }

    func bodiesMayStream(on listener: Int) -> Bool {
        listener >= 0 && listener < bodiesMayStream.count && bodiesMayStream[listener]
    }
}
