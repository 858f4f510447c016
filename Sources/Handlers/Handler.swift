// The HTTP types a handler sees (HTTPRequest, HTTPResponse, HTTPHeaders, ...) live in HerdHTTP;
// re-exported so that `import Handlers` (and `import Herd`) is all a handler needs.
@_exported import HerdHTTP

/// The handler protocol: what a user implements to serve requests in a herdd worker.
///
/// A worker runs `handle` on its event loop, one request at a time. It may block (see
/// `mayBlock`: the worker's other connections are served by idle workers meanwhile), but not
/// longer than `--timeout` (a handler stuck longer gets the worker killed and replaced). Return the whole response; large bodies are returned as a file
/// (`.file`, sent with sendfile) or as a stream of chunks (`.stream`). A handler that awaits
/// (a database driver, an HTTP client) conforms to ``AsyncHandler`` instead.
public protocol Handler: Sendable {
    /// Answers one request. Called on the worker's event loop; the returned response is
    /// queued on the connection at once.
    func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse

    /// Whether `handle` may block (a database call, a slow upstream, a sleep): then, while it
    /// runs, the worker hands its other idle keep-alive connections that turn readable to an
    /// idle worker (work-conserving dispatch; docs/design.md). Default `true`: a user handler
    /// is assumed to block. Handlers that always answer at once say `false`, so their requests
    /// pay nothing for the dispatch machinery.
    var mayBlock: Bool { get }
}

extension Handler {
    public var mayBlock: Bool { true }
}

/// What a handler knows about where it runs.
public struct HandlerContext: Sendable {
    /// Name of the listener the connection came from (LISTEN_FDNAMES entry or `name=`).
    public var listenerName: String
    /// Worker slot number (0-based) and OS pid of the worker process.
    public var workerID: Int
    /// OS pid of the worker process serving the request.
    public var pid: Int32
    /// Peer address ("127.0.0.1:51234", "[::1]:4000", "unix" when printed).
    public var peerAddress: PeerAddress
    /// Set by the worker for handlers that decide per request whether they block
    /// (BlockingGate.swift); nil otherwise.
    package var blockingGate: BlockingGate? = nil
    /// The request's body as it streams in, for a request whose handler asked for it
    /// (``AsyncHandler/streamsBody(of:)``); nil otherwise (the body is in `request.body`).
    /// Settable for tests and for a handler that passes a request on to another.
    public var requestBody: RequestBodyStream? = nil
    /// A recent `monotonicNanos()` reading: the end of the worker's previous handler in this
    /// turn of its loop, or the turn's start; 0 where no worker set it (tests, a context made
    /// by hand). A handler that needs a clock only to the millisecond (the static handler's
    /// 1 s validity periods) reads it instead of the clock.
    package var recentNanos: UInt64 = 0
    /// Peer address as text, formatted when read.
    public var peer: String {
        get { peerAddress.description }
        set { peerAddress = PeerAddress(text: newValue) }
    }

    /// A context with the peer as text (tests, handlers calling handlers).
    public init(listenerName: String, workerID: Int, pid: Int32, peer: String) {
        self.init(listenerName: listenerName, workerID: workerID, pid: pid, peerAddress: PeerAddress(text: peer))
    }

    /// A context with the peer's address as the kernel gave it.
    public init(listenerName: String, workerID: Int, pid: Int32, peerAddress: PeerAddress) {
        self.listenerName = listenerName
        self.workerID = workerID
        self.pid = pid
        self.peerAddress = peerAddress
    }
}
