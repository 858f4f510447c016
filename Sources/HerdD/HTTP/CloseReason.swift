/// Why herdd closed a connection (issue 24: every close explainable). Counted per worker in the
/// scoreboard (`Scoreboard.closeBase` + raw value), exported as
/// `herdd_connections_closed_total{reason=...}` and logged at debug level (`connection-closed`).
///
/// The reason is the decision, not the last syscall: a connection that answered 408 and then
/// lingered to let the client read it closes as `header-timeout`, whether the linger ended at
/// the client's EOF or at its deadline.
enum CloseReason: Int, CaseIterable, Sendable {
    /// The client closed (EOF) or hung up; nothing of ours was left to send.
    case clientClosed = 0
    /// recv failed (ECONNRESET...).
    case readError
    /// send or sendfile failed (EPIPE, ECONNRESET...), or the file being sent shrank.
    case writeError
    /// The response said `Connection: close` (the client asked, HTTP/1.0, a close-delimited
    /// body, max-requests, a draining worker) and is out.
    case responseDone
    /// A request the parser refused (4xx/5xx) was answered; the rest of the input is garbage.
    case protocolError
    /// The head did not arrive within --header-timeout: 408.
    case headerTimeout
    /// The body stalled or crawled (--body-timeout / --body-min-rate): 408.
    case bodyTimeout
    /// Idle longer than --keepalive-timeout.
    case keepAliveTimeout
    /// A response waited 60 s with no byte taken by the client.
    case writeStall
    /// Idle while the worker drains (DrainPolicy).
    case drain
    /// Handed to another worker through the dispatch socket (our copy closed, the client's
    /// connection lives on).
    case handOff
    /// An epoll registration failed (or another failure of ours): the connection cannot be served.
    case internalError
    /// Open when its worker died without draining (killed, crashed): counted by the master.
    case workerExit

    /// The `reason` label value.
    var label: String {
        switch self {
        case .clientClosed: "client-closed"
        case .readError: "read-error"
        case .writeError: "write-error"
        case .responseDone: "response-done"
        case .protocolError: "protocol-error"
        case .headerTimeout: "header-timeout"
        case .bodyTimeout: "body-timeout"
        case .keepAliveTimeout: "keepalive-timeout"
        case .writeStall: "write-stall"
        case .drain: "drain"
        case .handOff: "hand-off"
        case .internalError: "error"
        case .workerExit: "worker-exit"
        }
    }

    init?(label: String) {
        guard let r = CloseReason.allCases.first(where: { $0.label == label }) else { return nil }
        self = r
    }

    /// Counters indexed by raw value, all zero.
    static var zeroCounts: [UInt64] { [UInt64](repeating: 0, count: allCases.count) }
}
