import CHerdSys
import Glibc

/// What accept4 did on a non-blocking listener.
@usableFromInline package enum Accepted: Equatable, Sendable {
    /// A connection, non-blocking and CLOEXEC.
    case connection(Int32)
    /// EAGAIN: the queue is empty (another process took the connection, or none came).
    case wouldBlock
    /// Any other errno (ECONNABORTED and EPROTO: that connection is gone, try the next;
    /// EMFILE/ENFILE/ENOBUFS/ENOMEM: out of resources).
    case failed(Int32)
}

/// One datagram from `Sys.receiveFD`.
@usableFromInline package enum ReceivedFD: Equatable, Sendable {
    /// The fd it carried (CLOEXEC; -1 if it carried none) and its payload.
    case message(fd: Int32, listener: UInt64, readyAt: UInt64)
    /// EAGAIN: nothing queued.
    case empty
    case failed(Int32)
}

/// sendfile(2) under a name no member of `Sys` shadows (its header comes through the shim).
@usableFromInline @inline(__always)
func rawSendfile(_ out: Int32, _ file: Int32, _ offset: UnsafeMutablePointer<off_t>, _ count: Int) -> Int {
    sendfile(out, file, offset, count)
}

extension Sys {
    // MARK: Creating, binding, connecting

    /// A CLOEXEC stream socket of `family` (AF_INET, AF_INET6, AF_UNIX).
    @usableFromInline package static func streamSocket(_ family: Int32, what: @autoclosure () -> String? = nil) throws(SysError) -> Int32 {
        try sys("socket", detail: what()) { socket(family, herd_sock_stream() | herd_sock_cloexec(), 0) }
    }

    /// A connected AF_UNIX SOCK_SEQPACKET pair (message boundaries kept, EOF when the peer
    /// dies), CLOEXEC, optionally non-blocking.
    @usableFromInline package static func seqpacketPair(nonBlocking: Bool, what: @autoclosure () -> String? = nil) throws(SysError) -> (Int32, Int32) {
        var pair: [Int32] = [-1, -1]
        let kind = herd_sock_seqpacket() | herd_sock_cloexec() | (nonBlocking ? herd_sock_nonblock() : 0)
        try sys("socketpair", detail: what()) { socketpair(AF_UNIX, kind, 0, &pair) }
        return (pair[0], pair[1])
    }

    @usableFromInline package static func bind(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t,
                             what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("bind", detail: what()) { Glibc.bind(fd, address, length) }
    }

    @usableFromInline package static func listen(_ fd: Int32, backlog: Int32, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("listen", detail: what()) { Glibc.listen(fd, backlog) }
    }

    /// connect(2) on a blocking socket. Not retried on EINTR (see SysError.swift).
    @usableFromInline package static func connect(_ fd: Int32, _ address: UnsafePointer<sockaddr>?, _ length: socklen_t,
                                what: @autoclosure () -> String? = nil) throws(SysError) {
        if Glibc.connect(fd, address, length) != 0 { throw SysError("connect", detail: what()) }
    }

    /// shutdown(2): SHUT_RD on a listener leaves the LISTEN state for every process that holds
    /// it; SHUT_WR on a connection sends our FIN.
    @usableFromInline package static func shutdown(_ fd: Int32, _ how: Int32, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("shutdown", detail: what()) { Glibc.shutdown(fd, how) }
    }

    /// Stops new connections on a listening TCP socket without touching its accept queue: a
    /// drop-all socket filter (SO_ATTACH_FILTER; why, in the shim). The filter belongs to the
    /// socket, so it holds for every process that has a copy.
    @usableFromInline package static func dropNewConnections(_ fd: Int32, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("setsockopt(SO_ATTACH_FILTER)", detail: what()) { herd_attach_drop_all_filter(fd) }
    }

    // MARK: Options and names

    /// setsockopt(2) with a value of any plain type (Int32 flag, timeval...).
    @usableFromInline package static func setOption<T>(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: T,
                                     what: @autoclosure () -> String? = nil) throws(SysError) {
        _ = try withUnsafeBytes(of: value) { raw throws(SysError) in
            try sys("setsockopt", detail: what()) { setsockopt(fd, level, name, raw.baseAddress, socklen_t(raw.count)) }
        }
    }

    /// SO_RCVTIMEO and SO_SNDTIMEO: a blocking socket's reads and writes give up after `seconds`.
    @usableFromInline package static func setTimeouts(_ fd: Int32, seconds: Int) throws(SysError) {
        let tv = timeval(tv_sec: seconds, tv_usec: 0)
        try setOption(fd, SOL_SOCKET, SO_RCVTIMEO, tv, what: "SO_RCVTIMEO")
        try setOption(fd, SOL_SOCKET, SO_SNDTIMEO, tv, what: "SO_SNDTIMEO")
    }

    /// getpeername(2) into `storage`; `length` in: its size, out: the address's.
    @usableFromInline package static func peerName(_ fd: Int32, _ storage: inout sockaddr_storage, _ length: inout socklen_t) throws(SysError) {
        let rc = withUnsafeMutableBytes(of: &storage) { getpeername(fd, sockaddrPointer($0), &length) }
        if rc != 0 { throw SysError("getpeername") }
    }

    /// getsockname(2) into `storage`.
    @usableFromInline package static func localName(_ fd: Int32, _ storage: inout sockaddr_storage, _ length: inout socklen_t) throws(SysError) {
        let rc = withUnsafeMutableBytes(of: &storage) { getsockname(fd, sockaddrPointer($0), &length) }
        if rc != 0 { throw SysError("getsockname") }
    }

    // MARK: The hot path: accept, recv, send, sendfile

    /// accept4(2) on a non-blocking listener; the connection is non-blocking and CLOEXEC. The
    /// peer's address goes to `storage` (`length` in: its size, out: the address's).
    @inlinable @inline(__always)
    package static func accept(_ listener: Int32, _ storage: inout sockaddr_storage, _ length: inout socklen_t) -> Accepted {
        while true {
            let fd = withUnsafeMutableBytes(of: &storage) { raw in
                accept4(listener, sockaddrPointer(raw), &length, herd_sock_nonblock() | herd_sock_cloexec())
            }
            if fd >= 0 { return .connection(fd) }
            let e = Glibc.errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            return .failed(e)
        }
    }

    /// recv(2) into `buffer` (`.done(0)`: the peer closed its side).
    @inlinable @inline(__always)
    package static func recv(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, flags: Int32 = 0) -> IOResult {
        sysIO { Glibc.recv(fd, buffer, count, flags) }
    }

    /// send(2) with MSG_NOSIGNAL (a closed peer gives EPIPE, not SIGPIPE) plus `flags`.
    @inlinable @inline(__always)
    package static func send(_ fd: Int32, _ bytes: UnsafeRawPointer?, _ count: Int, flags: Int32 = 0) -> IOResult {
        sysIO { Glibc.send(fd, bytes, count, Int32(MSG_NOSIGNAL) | flags) }
    }

    /// sendfile(2): up to `count` bytes of `file` from `offset` (advanced) to socket `fd`, from
    /// the page cache, no copy through user space. `.done(0)`: the file ended (it shrank).
    @inlinable @inline(__always)
    package static func sendfile(_ fd: Int32, _ file: Int32, _ offset: inout off_t, _ count: Int) -> IOResult {
        sysIO { rawSendfile(fd, file, &offset, count) }
    }

    /// Whether bytes wait on a connected socket, without consuming them (recv MSG_PEEK): false
    /// for none (EAGAIN), EOF or an error (the owner's event loop deals with those).
    @inlinable @inline(__always)
    package static func hasInput(_ fd: Int32) -> Bool { herd_has_input(fd) == 1 }

    /// recv(2) with MSG_PEEK | MSG_DONTWAIT: the first bytes waiting, left in place.
    @inlinable
    package static func peek(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> IOResult {
        sysIO { Glibc.recv(fd, buffer, count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT)) }
    }

    /// Whether a datagram waits on a SOCK_SEQPACKET/DGRAM socket, without taking it
    /// (ioctl SIOCINQ: the length of the next datagram, 0 when the queue is empty).
    package static func datagramQueued(_ fd: Int32) throws -> Bool {
        let rc = herd_datagram_queued(fd)
        if rc < 0 { throw SysError("ioctl", errno: -rc, detail: "SIOCINQ") }
        return rc == 1
    }

    // MARK: Passing fds (SCM_RIGHTS)

    /// Sends `fd` and a payload as one datagram (SOCK_SEQPACKET), non-blocking, no SIGPIPE.
    /// Returns 0 or the errno (EAGAIN: the queue is full, the sender keeps its fd).
    @usableFromInline package static func sendFD(_ socket: Int32, _ fd: Int32, listener: UInt64, readyAt: UInt64) -> Int32 {
        var payload = herd_dispatch_payload(listener: listener, readyAt: readyAt)
        let rc = herd_send_fd(socket, fd, &payload)  // retries EINTR in C
        return rc < 0 ? -rc : 0
    }

    /// Receives one datagram with an fd (MSG_CMSG_CLOEXEC), non-blocking.
    @usableFromInline package static func receiveFD(_ socket: Int32) -> ReceivedFD {
        var fd: Int32 = -1
        var payload = herd_dispatch_payload()
        let rc = herd_recv_fd(socket, &fd, &payload)  // retries EINTR in C
        if rc == 0 { return .empty }
        if rc < 0 { return .failed(-rc) }
        return .message(fd: fd, listener: payload.listener, readyAt: payload.readyAt)
    }

    /// Bytes sent on a unix socket and not read yet by its peer (ioctl SIOCOUTQ; datagrams
    /// count with their kernel size, the same for every datagram of one kind).
    package static func unsentBytes(_ fd: Int32) throws(SysError) -> Int {
        let rc = herd_unix_outq(fd)
        if rc < 0 { throw SysError("ioctl", errno: -rc, detail: "SIOCOUTQ") }
        return Int(rc)
    }

    /// The payload (listener, readyAt) of the datagram at the head of a dispatch socket,
    /// without taking it or its fd (recvmsg MSG_PEEK, no control buffer). nil: empty or error.
    @usableFromInline package static func peekDispatch(_ socket: Int32) -> (listener: UInt64, readyAt: UInt64)? {
        var payload = herd_dispatch_payload()
        guard herd_peek_dispatch(socket, &payload) == 1 else { return nil }  // retries EINTR in C
        return (payload.listener, payload.readyAt)
    }

    // MARK: Accept queues (TCP_INFO, sock_diag)

    /// A listening TCP socket's accept queue: (waiting, limit) from TCP_INFO, nil on error.
    @usableFromInline package static func tcpAcceptQueue(_ fd: Int32) -> (UInt32, UInt32)? {
        var q: UInt32 = 0, lim: UInt32 = 0
        return herd_tcp_backlog(fd, &q, &lim) == 0 ? (q, lim) : nil
    }

    /// An accepted TCP connection's wait so far in ms (TCP_INFO tcpi_last_data_recv: since its
    /// request bytes arrived, or its handshake); nil for a unix socket or on error.
    @usableFromInline package static func tcpWaitedMillis(_ fd: Int32) -> UInt64? {
        let ms = herd_tcp_last_data_recv_ms(fd)
        return ms >= 0 ? UInt64(ms) : nil
    }

    /// A NETLINK_SOCK_DIAG socket for `unixAcceptQueue`.
    @usableFromInline package static func sockDiagSocket() throws(SysError) -> Int32 {
        try sys("socket", detail: "NETLINK_SOCK_DIAG") { herd_sock_diag_socket() }
    }

    /// A listening unix socket's accept queue: (waiting, limit) from sock_diag, nil on error.
    @usableFromInline package static func unixAcceptQueue(diag: Int32, _ fd: Int32) -> (UInt32, UInt32)? {
        var q: UInt32 = 0, lim: UInt32 = 0
        return herd_unix_backlog(diag, fd, &q, &lim) == 0 ? (q, lim) : nil
    }

    // MARK: sd_notify without blocking

    /// One datagram to $NOTIFY_SOCKET, MSG_DONTWAIT: 1 sent, 0 no NOTIFY_SOCKET, -errno on
    /// failure (a full queue: EAGAIN, the message is dropped).
    @usableFromInline package static func notifyNonBlocking(_ text: String) -> Int32 {
        herd_notify_nonblocking(text)
    }
}
