import ArgumentParser
import CHerdSys
import Glibc

/// `herdd status`: asks a running master's metrics listener for its worker table.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the workers and counters of a running herdd (reads its metrics listener).")

    @Option(name: .long, help: ArgumentHelp("Address of a listener whose handler is 'metrics': HOST:PORT, [IPV6]:PORT or unix:/PATH.", valueName: "addr"))
    var address: String = "127.0.0.1:9100"

    @Flag(name: .long, help: "Print JSON (for scripts) instead of the table.")
    var json = false

    func run() throws {
        let spec: ListenSpec
        do { spec = try ListenSpec(parsing: address) } catch { throw ValidationError("--address: \(error)") }
        do {
            let body = try httpGet(spec.address, path: json ? "/status.json" : "/status")
            print(body, terminator: "")
        } catch {
            var err = "herdd status: \(error)\n"
            err.withUTF8 { writeAll(2, UnsafeRawBufferPointer($0)) }
            throw ExitCode(ExitStatus.osError)
        }
    }
}

struct StatusFetchError: Error, CustomStringConvertible {
    let description: String
}

/// A minimal blocking HTTP/1.0 GET with a 5 s timeout, enough to read herdd's own endpoint.
func httpGet(_ address: ListenSpec.Address, path: String) throws -> String {
    let fd: Int32
    var target = ""
    switch address {
    case .ipv4(let host, let port):
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, host, &sa.sin_addr)
        fd = try sys("socket") { socket(AF_INET, herd_sock_stream() | herd_sock_cloexec(), 0) }
        try connectOrClose(fd, &sa, "\(host):\(port)")
        target = "\(host):\(port)"
    case .ipv6(let host, let port):
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        inet_pton(AF_INET6, host, &sa.sin6_addr)
        fd = try sys("socket") { socket(AF_INET6, herd_sock_stream() | herd_sock_cloexec(), 0) }
        try connectOrClose(fd, &sa, "[\(host)]:\(port)")
        target = "[\(host)]:\(port)"
    case .unix(let path):
        var sa = sockaddr_un()
        sa.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &sa.sun_path) { dst in
            for (i, b) in path.utf8.enumerated() where i < dst.count - 1 { dst[i] = b }
        }
        fd = try sys("socket") { socket(AF_UNIX, herd_sock_stream() | herd_sock_cloexec(), 0) }
        try connectOrClose(fd, &sa, "unix:\(path)")
        target = "localhost"
    }
    defer { close(fd) }
    var tv = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var request = "GET \(path) HTTP/1.1\r\nHost: \(target)\r\nConnection: close\r\n\r\n"
    request.withUTF8 { writeAll(fd, UnsafeRawBufferPointer($0)) }
    var response: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 16384)
    while response.count < 16 << 20 {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { response += buf[0..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        if n < 0 { throw SysError("recv", detail: target) }
        break
    }
    // Split head and body at the first CRLFCRLF.
    var headEnd: Int? = nil
    if response.count >= 4 {
        for i in 0...(response.count - 4) where response[i] == 13 && response[i + 1] == 10 && response[i + 2] == 13 && response[i + 3] == 10 {
            headEnd = i
            break
        }
    }
    guard let headEnd else { throw StatusFetchError(description: "\(target): incomplete HTTP response") }
    let head = String(decoding: response[..<headEnd], as: UTF8.self)
    let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
    guard statusLine.hasPrefix("HTTP/1.1 200") else {
        throw StatusFetchError(description: "\(target)\(path): \(statusLine) (is this a listener with handler 'metrics'?)")
    }
    return String(decoding: response[(headEnd + 4)...], as: UTF8.self)
}

private func connectOrClose<T>(_ fd: Int32, _ sa: inout T, _ what: String) throws {
    let r = withUnsafeBytes(of: &sa) { raw in
        connect(fd, sockaddrPointer(raw), socklen_t(raw.count))
    }
    if r < 0 {
        let e = errno
        close(fd)
        throw SysError("connect", errno: e, detail: what)
    }
}
