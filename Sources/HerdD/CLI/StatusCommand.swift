import ArgumentParser
import HerdLibc
import HerdSys

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
            err.withUTF8 { Sys.writeAll(2, UnsafeRawBufferPointer($0)) }
            throw ExitCode(ExitStatus.osError)
        }
    }
}

struct StatusFetchError: Error, CustomStringConvertible {
    let description: String
}

/// A minimal blocking HTTP/1.0 GET with a 5 s timeout, enough to read herdd's own endpoint.
func httpGet(_ address: ListenSpec.Address, path: String) throws -> String {
    let target = "\(address)" // what errors name; also the Host header (unix: localhost)
    var host = target
    if case .unix = address { host = "localhost" }
    let sa = try SocketAddress(address)
    let fd = try Sys.streamSocket(sa.family)
    do { try sa.withSockaddr { try Sys.connect(fd, $0, $1, what: target) } } catch {
        Sys.close(fd)
        throw error
    }
    defer { Sys.close(fd) }
    try Sys.setTimeouts(fd, seconds: 5)
    var request = "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n"
    request.withUTF8 { Sys.writeAll(fd, UnsafeRawBufferPointer($0)) }
    var response: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 16384)
    reading: while response.count < 16 << 20 {
        switch buf.withUnsafeMutableBytes({ Sys.recv(fd, $0.baseAddress, $0.count) }) {
        case .done(0): break reading
        case .done(let n): response += buf[0..<n]
        case .wouldBlock: throw SysError("recv", errno: EAGAIN, detail: target) // SO_RCVTIMEO
        case .failed(let e): throw SysError("recv", errno: e, detail: target)
        }
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
