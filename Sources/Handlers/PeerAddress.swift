import HerdLibc

/// The address of a connection's peer, kept as numbers and turned into text only when someone
/// reads it (a handler, the access log): formatting it for every connection, with inet_ntop
/// and string interpolation, cost more than accepting it.
public struct PeerAddress: Sendable, CustomStringConvertible, Equatable {
    private enum Storage: Sendable, Equatable {
        case ipv4(address: UInt32, port: UInt16)          // host byte order
        case ipv6(high: UInt64, low: UInt64, port: UInt16)  // the 16 address bytes, as stored
        case unix(path: String)
        case text(String)
    }

    private let storage: Storage

    /// An address already in text form.
    public init(text: String) { storage = .text(text) }

    /// From a sockaddr as accept4 returned it (`length` bytes of `raw` are valid).
    public init(sockaddr raw: UnsafeRawBufferPointer, length: Int) {
        guard let base = raw.baseAddress, length >= MemoryLayout<sa_family_t>.size,
              length <= raw.count else {
            storage = .text("?")
            return
        }
        let family = Int32(base.loadUnaligned(as: sa_family_t.self))
        switch family {
        case AF_INET where length >= MemoryLayout<sockaddr_in>.size:
            let sin = base.loadUnaligned(as: sockaddr_in.self)
            storage = .ipv4(address: UInt32(bigEndian: sin.sin_addr.s_addr), port: UInt16(bigEndian: sin.sin_port))
        case AF_INET6 where length >= MemoryLayout<sockaddr_in6>.size:
            let sin6 = base.loadUnaligned(as: sockaddr_in6.self)
            let (high, low) = withUnsafeBytes(of: sin6.sin6_addr) {
                ($0.loadUnaligned(fromByteOffset: 0, as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            storage = .ipv6(high: high, low: low, port: UInt16(bigEndian: sin6.sin6_port))
        case AF_UNIX:
            let pathOffset = MemoryLayout<sa_family_t>.size
            let path = UnsafeRawBufferPointer(rebasing: raw[pathOffset..<length]).prefix { $0 != 0 }
            storage = .unix(path: String(decoding: path, as: UTF8.self))
        default:
            storage = .text("family \(family)")
        }
    }

    /// "127.0.0.1:51234", "[::1]:4000", "unix" or "unix:/path".
    public var description: String {
        switch storage {
        case .text(let s):
            return s
        case .ipv4(let a, let port):
            return "\(a >> 24).\((a >> 16) & 0xFF).\((a >> 8) & 0xFF).\(a & 0xFF):\(port)"
        case .ipv6(let high, let low, let port):
            var addr = in6_addr()
            withUnsafeMutableBytes(of: &addr) { dst in
                dst.storeBytes(of: high, toByteOffset: 0, as: UInt64.self)
                dst.storeBytes(of: low, toByteOffset: 8, as: UInt64.self)
            }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
            guard inet_ntop(AF_INET6, &addr, &buf, socklen_t(buf.count)) != nil else { return "[?]:\(port)" }
            let text = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return "[\(text)]:\(port)"
        case .unix(let path):
            return path.isEmpty ? "unix" : "unix:" + path
        }
    }
}
