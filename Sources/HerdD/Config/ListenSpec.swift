/// One listening address given on the command line or in the config file:
/// `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:80`, `unix:/run/herdd.sock`, each optionally followed by
/// `,name=NAME` (the listener name that selects its handler; default `http`).
struct ListenSpec: Equatable, Sendable, CustomStringConvertible {
    enum Address: Equatable, Sendable, CustomStringConvertible {
        case ipv4(String, port: UInt16)
        case ipv6(String, port: UInt16)
        case unix(path: String)

        /// "127.0.0.1:8080", "[::1]:8080", "unix:/run/herdd.sock": the form `--listen` takes.
        var description: String {
            switch self {
            case .ipv4(let h, let p): "\(h):\(p)"
            case .ipv6(let h, let p): "[\(h)]:\(p)"
            case .unix(let path): "unix:\(path)"
            }
        }
    }
    var address: Address
    var name: String

    var description: String { "\(address),name=\(name)" }

    static let defaultName = "http"

    struct ParseError: Error, CustomStringConvertible {
        let input: String
        let reason: String
        var description: String { "invalid listen address '\(input)': \(reason)" }
    }

    init(address: Address, name: String = ListenSpec.defaultName) {
        self.address = address
        self.name = name
    }

    init(parsing text: String) throws {
        var parts = text.split(separator: ",", omittingEmptySubsequences: false).map { String($0.trimmingWhitespace()) }
        let addr = parts.removeFirst()
        var name = ListenSpec.defaultName
        for opt in parts {
            if opt.hasPrefix("name=") {
                name = String(opt.dropFirst(5))
                try ListenSpec.validateName(name, input: text)
            } else {
                throw ParseError(input: text, reason: "unknown option '\(opt)' (expected name=NAME)")
            }
        }
        if addr.hasPrefix("unix:") {
            let path = String(addr.dropFirst(5))
            guard path.hasPrefix("/") else { throw ParseError(input: text, reason: "unix socket path must be absolute") }
            guard path.utf8.count < 108 else { throw ParseError(input: text, reason: "unix socket path longer than 107 bytes") }
            self.init(address: .unix(path: path), name: name)
            return
        }
        // host:port, with IPv6 hosts in brackets.
        let host: String
        let portText: Substring
        if addr.hasPrefix("[") {
            guard let close = addr.firstIndex(of: "]") else { throw ParseError(input: text, reason: "missing ']' after IPv6 address") }
            host = String(addr[addr.index(after: addr.startIndex)..<close])
            let rest = addr[addr.index(after: close)...]
            guard rest.hasPrefix(":") else { throw ParseError(input: text, reason: "missing ':PORT' after IPv6 address") }
            portText = rest.dropFirst()
            guard isIPv6Literal(host) else { throw ParseError(input: text, reason: "'\(host)' is not a numeric IPv6 address") }
        } else {
            guard let colon = addr.lastIndex(of: ":") else {
                throw ParseError(input: text, reason: "expected HOST:PORT, [IPV6]:PORT or unix:/PATH")
            }
            host = String(addr[..<colon])
            portText = addr[addr.index(after: colon)...]
            guard isIPv4Literal(host) else {
                throw ParseError(input: text, reason: "'\(host)' is not a numeric IPv4 address (host names are not resolved)")
            }
        }
        guard let port = UInt16(portText), port > 0 else {
            throw ParseError(input: text, reason: "port must be a number from 1 to 65535")
        }
        self.init(address: host.contains(":") ? .ipv6(host, port: port) : .ipv4(host, port: port), name: name)
    }

    static func validateName(_ name: String, input: String) throws {
        // Same alphabet systemd accepts for FileDescriptorName= (no ':' which separates LISTEN_FDNAMES).
        guard !name.isEmpty, name.utf8.count <= 255,
              name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: ",") })
        else { throw ParseError(input: input, reason: "listener name must be 1-255 printable characters without ':' or ','") }
    }
}

private func isIPv4Literal(_ s: String) -> Bool {
    let parts = s.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4 else { return false }
    return parts.allSatisfy { p in !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isNumber) && (Int(p) ?? 256) <= 255 }
}

private func isIPv6Literal(_ s: String) -> Bool {
    !s.isEmpty && s.contains(":") && s.utf8.allSatisfy { c in
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F")) || c == UInt8(ascii: ":") || c == UInt8(ascii: ".")
    }
}
