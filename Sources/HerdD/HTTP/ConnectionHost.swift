import Handlers

/// Everything an `HTTPConnection` needs from the event loop that owns it, and nothing more.
///
/// A connection drives HTTP/1.1 on one socket (HerdHTTP's parser and serializer, the buffers,
/// sendfile, timeouts, close); its host owns the epoll set, the clock, the handler and the
/// counters. The connection only ever calls these members; the host calls the connection's
/// `readable()`, `writable()`, `checkTimeouts(now:)`, `drain()`, `handedOff()` and `close(because:)`, reads
/// `isIdle`/`canHandOff`/`closed`, and sets `peerHangUpReported`, `queuedSince`, `received`
/// and `registered`.
/// A worker process (Worker/Worker.swift) is the host of its connections.
///
/// The connection is generic over its host rather than holding an `any ConnectionHost`: every
/// call below is a direct (specialized, inlinable) call on the concrete host type, as it was
/// when the connection held the `Worker` itself. No existential dispatch on the hot path.
protocol ConnectionHost: AnyObject {
    // MARK: clock, limits, memory

    /// Start of the current turn of the event loop (monotonic nanoseconds): the time of every
    /// read in the turn, the key of the per-turn write budget.
    var now: UInt64 { get }
    /// Parser limits for the connection's requests (also sizes its input back-pressure).
    var limits: HTTPLimits { get }
    /// Input/output buffers and parser states lent to connections while a request is in progress.
    var buffers: BufferPool { get }
    /// The `Date` field value for the current second.
    var httpDate: String { get }

    // MARK: timeouts and drain

    /// How long a request's head and body may take to arrive (RequestTimeouts.swift).
    var requestTimeouts: RequestTimeouts { get }
    /// How long an idle keep-alive connection stays open, in nanoseconds.
    var keepAliveTimeoutNanos: UInt64 { get }
    /// The host is draining: idle connections close (DrainPolicy), none is kept alive.
    var draining: Bool { get }
    /// Whether the response being queued may keep its connection open.
    var keepAliveAllowed: Bool { get }

    // MARK: requests

    /// Runs the handler for `request`; `readyAt`: when the request became readable. Nil: the
    /// request is served asynchronously (the host set `conn.asyncCall`, and calls
    /// `conn.finishAsync` with the response later).
    func handle(_ request: HTTPRequest, on conn: HTTPConnection<Self>, readyAt: UInt64) -> HTTPResponse?
    /// --max-queue-time: the 503 for a request that waited too long (its handler is not run).
    func shedResponse(_ request: HTTPRequest, on conn: HTTPConnection<Self>, readyAt: UInt64) -> HTTPResponse?
    /// A response (handler's or error) was queued with `status`: request counters.
    func responded(status: Int)
    /// The handler's response was queued: latency since `startedAt`, access log.
    func requestFinished(_ request: HTTPRequest, status: Int, on conn: HTTPConnection<Self>, startedAt: UInt64)

    /// Whether the handler of `listener` may stream request bodies: then the parser stops
    /// after a head with a body, for `streamsBody` to decide (Connection+BodyIn.swift).
    func mayStreamBodies(_ listener: Int) -> Bool
    /// Whether the body of `head` streams in to its handler (asked once per such head).
    func streamsBody(_ head: HTTPRequest, on conn: HTTPConnection<Self>) -> Bool
    /// `conn` streams a request body into `body`: when its reader makes room after the
    /// connection paused, call `conn.producerWoke()` on the loop thread.
    func startBodyIn(_ body: RequestBodyStream, for conn: HTTPConnection<Self>)

    /// The connection closed while waiting for `call`'s response: cancel it.
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
    /// `conn` spent its write budget with the socket still writable: have it called again on a
    /// later turn. False if that failed (the connection then closes).
    func yieldWrite(_ conn: HTTPConnection<Self>) -> Bool

    // MARK: close

    /// A connection that came from another process (`received`) is about to close its fd:
    /// remove it from the epoll set first (the other copy may keep the registration alive).
    func unregisterReceived(_ fd: Int32)
    /// `conn` is closed (or handed off) for `reason`: forget it, count and log the reason.
    func connectionClosed(_ conn: HTTPConnection<Self>, reason: CloseReason)
}
