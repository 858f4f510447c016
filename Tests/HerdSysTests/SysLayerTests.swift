import Glibc
import HerdSys
import Testing

/// The system layer (Sources/HerdSys) on real fds: epoll registrations and their data, what the I/O calls
/// return for would-block, data, end of file and errors, and what a SysError says.
@Suite struct SysLayerTests {
    @Test func epollAddModifyRemoveWait() throws {
        let ep = try Epoll(what: "test")
        defer { Sys.close(ep.fd) }
        let (a, b) = try Sys.seqpacketPair(nonBlocking: true)
        defer { Sys.close(a); Sys.close(b) }
        try ep.add(a, .input, data: 3 << 32)
        // A second ADD of the same fd is an error that names the call and the operation.
        let e = #expect(throws: SysError.self) { try ep.add(a, .input, data: 3 << 32) }
        #expect(e?.errno == EEXIST)
        #expect(e?.description.hasPrefix("epoll_ctl(EPOLL_CTL_ADD") == true)
        var list = EpollReadyList(capacity: 4)
        #expect(try ep.wait(&list, timeoutMillis: 0) == 0)
        let byte: [UInt8] = [1]
        #expect(byte.withUnsafeBytes { Sys.send(b, $0.baseAddress, 1) } == .done(1))
        #expect(try ep.wait(&list, timeoutMillis: 1000) == 1)
        #expect(list[0].data == 3 << 32)
        #expect(list[0].events.contains(.input))
        try ep.modify(a, .connection, data: UInt64(a))
        #expect(try ep.wait(&list, timeoutMillis: 1000) == 1)
        #expect(list[0].data == UInt64(a))
        try ep.remove(a)
        #expect(try ep.wait(&list, timeoutMillis: 0) == 0)
        #expect(throws: SysError.self) { try ep.remove(a) }  // ENOENT: not registered
    }

    /// What the parked dispatch watcher relies on (Watcher.swift): an edge-triggered item that
    /// turns ready while no thread is in epoll_wait stays on the ready list until a later
    /// epoll_wait reports it, once; and a blocking eventfd written before its read returns at once.
    @Test func edgeWhileNobodyWaitsIsReportedLaterOnceAndEventFDKeepsAWrite() throws {
        let ep = try Epoll(what: "test")
        defer { Sys.close(ep.fd) }
        let (a, b) = try Sys.seqpacketPair(nonBlocking: true)
        defer { Sys.close(a); Sys.close(b) }
        try ep.add(a, [.input, .edgeTriggered], data: 7)
        let byte: [UInt8] = [1]
        #expect(byte.withUnsafeBytes { Sys.send(b, $0.baseAddress, 1) } == .done(1))
        var list = EpollReadyList(capacity: 4)
        #expect(try ep.wait(&list, timeoutMillis: 0) == 1)
        #expect(list[0].data == 7)
        #expect(try ep.wait(&list, timeoutMillis: 0) == 0)  // reported once
        let park = try Sys.eventFD(blocking: true, what: "test park")
        defer { Sys.close(park) }
        Sys.signalEventFD(park)
        try Sys.waitEventFD(park)  // does not block: the write came first
    }

    @Test func recvSendResults() throws {
        let (a, b) = try Sys.seqpacketPair(nonBlocking: true)
        defer { Sys.close(a) }
        var buf = [UInt8](repeating: 0, count: 16)
        #expect(buf.withUnsafeMutableBytes { Sys.recv(a, $0.baseAddress, $0.count) } == .wouldBlock)
        let msg = Array("hello".utf8)
        #expect(msg.withUnsafeBytes { Sys.send(b, $0.baseAddress, $0.count) } == .done(5))
        #expect(buf.withUnsafeMutableBytes { Sys.recv(a, $0.baseAddress, $0.count) } == .done(5))
        #expect(Array(buf[0..<5]) == msg)
        Sys.close(b)
        #expect(buf.withUnsafeMutableBytes { Sys.recv(a, $0.baseAddress, $0.count) } == .done(0))  // EOF
        // The peer is gone: EPIPE, and no SIGPIPE (MSG_NOSIGNAL) to kill the test process.
        #expect(msg.withUnsafeBytes { Sys.send(a, $0.baseAddress, $0.count) } == .failed(EPIPE))
        #expect(buf.withUnsafeMutableBytes { Sys.recv(-1, $0.baseAddress, $0.count) } == .failed(EBADF))
    }

    @Test func acceptOnAnEmptyListenerWouldBlock() throws {
        let fd = try Sys.streamSocket(AF_INET)
        defer { Sys.close(fd) }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        try withUnsafeBytes(of: &sa) { raw in
            try Sys.bind(fd, sockaddrPointer(raw), socklen_t(MemoryLayout<sockaddr_in>.size))
        }
        try Sys.listen(fd, backlog: 4)
        try Sys.setNonBlocking(fd)
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        #expect(Sys.accept(fd, &storage, &len) == .wouldBlock)
        #expect(Sys.accept(-1, &storage, &len) == .failed(EBADF))
    }

    @Test func fdPassingKeepsThePayload() throws {
        let (a, b) = try Sys.seqpacketPair(nonBlocking: true)
        defer { Sys.close(a); Sys.close(b) }
        #expect(Sys.receiveFD(b) == .empty)
        let (r, w) = try Sys.pipe()
        defer { Sys.close(r); Sys.close(w) }
        #expect(Sys.sendFD(a, r, listener: 3, readyAt: 123_456) == 0)
        guard case .message(let fd, let listener, let readyAt) = Sys.receiveFD(b) else {
            Issue.record("no message received")
            return
        }
        defer { Sys.close(fd) }
        #expect(fd >= 0 && fd != r)
        #expect(listener == 3 && readyAt == 123_456)
    }

    @Test func errorsNameCallErrnoAndDetail() {
        let e = #expect(throws: SysError.self) { try Sys.open("/nonexistent/herdd-sys-test", O_RDONLY) }
        #expect(e?.call == "open")
        #expect(e?.errno == ENOENT)
        #expect(e?.description == "open(/nonexistent/herdd-sys-test): No such file or directory (errno 2)")
        let k = #expect(throws: SysError.self) { try Sys.kill(Int32.max, 0) }  // no such process
        #expect(k?.errno == ESRCH)
        #expect(!Sys.isAlive(Int32.max))
        #expect(Sys.isAlive(getpid()) && Sys.canSignal(getpid()))
    }

    @Test func readToEndStopsAtTheLimit() throws {
        let (r, w) = try Sys.pipe()
        defer { Sys.close(r) }
        let bytes = [UInt8](repeating: 7, count: 100)
        bytes.withUnsafeBytes { Sys.writeAll(w, $0) }
        Sys.close(w)
        var out: [UInt8] = []
        #expect(try Sys.readToEnd(r, into: &out, limit: 1000) == true)
        #expect(out == bytes)
    }

    /// A new master drops a USR2 still pending at its takeover (UpgradeSuccessor) this way: only
    /// the named signal goes, another pending one stays. SIGWINCH and SIGURG (default: ignore,
    /// so a slip cannot end the test process), sent to this thread, blocked here only.
    @Test func discardPendingSignalTakesOnlyThatSignal() throws {
        try Sys.blockSignals([SIGWINCH, SIGURG])
        defer { _ = try? Sys.unblockSignals([SIGWINCH, SIGURG]) }
        #expect(try Sys.discardPendingSignal(SIGWINCH) == 0)
        #expect(raise(SIGWINCH) == 0)
        #expect(raise(SIGURG) == 0)
        #expect(try Sys.discardPendingSignal(SIGWINCH) == 1)
        #expect(try Sys.discardPendingSignal(SIGWINCH) == 0)
        var pending = sigset_t()
        #expect(sigpending(&pending) == 0)
        #expect(sigismember(&pending, SIGURG) == 1)
        #expect(sigismember(&pending, SIGWINCH) == 0)
        #expect(try Sys.discardPendingSignal(SIGURG) == 1)
    }
}
