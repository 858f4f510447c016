import Glibc
import Testing
@testable import Handlers

/// The peer's address as handlers see it (PeerAddress, HandlerContext.peer).
@Suite struct PeerAddresses {
    @Test func peerAddressText() {
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = UInt16(51234).bigEndian
        sin.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let v4 = withUnsafeBytes(of: &sin) { PeerAddress(sockaddr: $0, length: $0.count) }
        #expect(v4.description == "127.0.0.1:51234")

        var sin6 = sockaddr_in6()
        sin6.sin6_family = sa_family_t(AF_INET6)
        sin6.sin6_port = UInt16(4000).bigEndian
        withUnsafeMutableBytes(of: &sin6.sin6_addr) { $0[15] = 1 }
        let v6 = withUnsafeBytes(of: &sin6) { PeerAddress(sockaddr: $0, length: $0.count) }
        #expect(v6.description == "[::1]:4000")

        var un = sockaddr_un()
        un.sun_family = sa_family_t(AF_UNIX)
        let unnamed = withUnsafeBytes(of: &un) { PeerAddress(sockaddr: $0, length: MemoryLayout<sa_family_t>.size) }
        #expect(unnamed.description == "unix")
        withUnsafeMutableBytes(of: &un.sun_path) { p in for (i, c) in "/run/x.sock".utf8.enumerated() { p[i] = c } }
        let named = withUnsafeBytes(of: &un) { PeerAddress(sockaddr: $0, length: $0.count) }
        #expect(named.description == "unix:/run/x.sock")

        #expect(PeerAddress(sockaddr: UnsafeRawBufferPointer(start: nil, count: 0), length: 0).description == "?")
        var ctx = HandlerContext(listenerName: "l", workerID: 0, pid: 1, peerAddress: v4)
        #expect(ctx.peer == "127.0.0.1:51234")
        ctx.peer = "elsewhere"
        #expect(ctx.peerAddress == PeerAddress(text: "elsewhere"))
    }
}

/// What Handlers adds to HerdHTTP's values with the system layer: the current date, and
/// closing the file of a body that is not sent.
@Suite struct HTTPWithTheSystemLayer {
    @Test func nowIsAnIMFFixdate() {
        #expect(HTTPDate.now().hasSuffix(" GMT") && HTTPDate.now().utf8.count == 29)
    }

    @Test func discardClosesTheFile() {
        let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        ResponseBody.file(fd: fd, offset: 0, count: 0).discard()
        #expect(fcntl(fd, F_GETFD) == -1 && errno == EBADF)
    }
}
