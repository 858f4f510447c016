/// The handler protocol: what a user implements to serve requests in a herdd worker.
///
/// A worker is single-threaded: `handle` runs on the worker's event loop, one request at a time.
/// It must not block for long (a handler stuck longer than `--timeout` gets the worker killed and
/// replaced by the master). Return the whole response; large bodies are returned as a file
/// (`.file`, sent with sendfile) or as a stream of chunks (`.stream`).
public protocol Handler: Sendable {
    func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse
}

/// What a handler knows about where it runs.
public struct HandlerContext: Sendable {
    /// Name of the listener the connection came from (LISTEN_FDNAMES entry or `name=`).
    public var listenerName: String
    /// Worker slot number (0-based) and OS pid of the worker process.
    public var workerID: Int
    public var pid: Int32
    /// Peer address as text ("127.0.0.1:51234", "[::1]:4000", "unix").
    public var peer: String

    public init(listenerName: String, workerID: Int, pid: Int32, peer: String) {
        self.listenerName = listenerName
        self.workerID = workerID
        self.pid = pid
        self.peer = peer
    }
}
