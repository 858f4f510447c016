/// Whether a connection just accepted has its request in already, guessed from the last ones
/// (issue 25). A worker reads a new connection at once, before its EPOLL_CTL_ADD, where the
/// handler cannot block (Worker.acceptConnections): under load the request came with the
/// handshake, and the response leaves without a registration or an event (nginx, without
/// `deferred`, always registers and waits). But a worker that is not saturated accepts as the
/// handshake completes, before the client writes: the read says EAGAIN, one system call for
/// nothing per connection (1 MB `Connection: close` at 8 clients: 1,548 of 1,569 such reads in a
/// second of strace, 10.2 system calls per response against nginx's 8.8).
///
/// A two-bit saturating count, as a branch predictor: found raises it, not found lowers it,
/// and the read is tried while it is at 2 or 3. Below, every `probeEvery`-th connection is
/// still read first, so a load that changes (the worker saturates) is noticed. A wrong guess
/// either way costs little: a read that finds nothing (EAGAIN), or a request left for the
/// EPOLL_CTL_ADD to report (the next epoll_wait returns it).
struct EarlyRequestGuess: Equatable {
    private(set) var count: UInt8 = 3
    private var sinceProbe: UInt8 = 0
    static let probeEvery: UInt8 = 8

    /// Read the connection before registering it? Asked once per accepted connection that may
    /// be served first; answer with `record` if it says yes.
    mutating func readFirst() -> Bool {
        if count >= 2 { return true }
        sinceProbe &+= 1
        guard sinceProbe >= EarlyRequestGuess.probeEvery else { return false }
        sinceProbe = 0
        return true
    }

    /// What the read found: bytes (or the end: a client gone is no wasted read), or EAGAIN.
    mutating func record(found: Bool) {
        if found { if count < 3 { count += 1 } } else if count > 0 { count -= 1 }
    }
}
