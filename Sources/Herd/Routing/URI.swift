import Handlers

extension HTTPRequest {
    /// The target's parts, with typed query parameters: `request.uri.queryParameters.get("limit", as: Int.self)`.
    public var uri: URI { URI(path: path, query: query) }
}

/// A request target: its decoded path and its query.
public struct URI: Sendable {
    /// The percent-decoded path ("/notes/7").
    public let path: String
    /// The raw query after '?', nil without one.
    public let query: String?

    /// A target's parts.
    public init(path: String, query: String?) {
        self.path = path
        self.query = query
    }

    /// The query's `name=value` pairs, percent-decoded (`+` is a space, as in forms).
    public var queryParameters: QueryParameters { QueryParameters(query: query) }
}

/// The query's parameters, decoded: `?done=%74rue&tag=a+b` gives `done` = "true", `tag` = "a b".
public struct QueryParameters: Sendable {
    /// The pairs in order; a name without `=` has the value "".
    public let pairs: [(name: String, value: String)]

    /// The parameters of a raw query string.
    public init(query: String?) {
        guard let query, !query.isEmpty else { pairs = []; return }
        pairs = query.utf8.split(separator: UInt8(ascii: "&")).map { item in
            let eq = item.firstIndex(of: UInt8(ascii: "="))
            let name = eq.map { item[..<$0] } ?? item[...]
            let value = eq.map { item[item.index(after: $0)...] } ?? item[item.endIndex...]
            return (QueryParameters.decode(name), QueryParameters.decode(value))
        }
    }

    /// The first value of `name`, or nil.
    public func get(_ name: String) -> String? {
        for p in pairs where p.name == name { return p.value }
        return nil
    }

    /// The first value of `name` as `T`, or nil when missing or not convertible.
    public func get<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) -> T? {
        get(name).flatMap { T($0) }
    }

    /// The first value of `name` as `T`; throws ``HTTPError`` 400 naming the parameter when it is
    /// missing or cannot be converted.
    public func require<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let text = get(name) else { throw HTTPError(.badRequest, message: "missing query parameter '\(name)'") }
        guard let value = T(text) else {
            throw HTTPError(.badRequest, message: "query parameter '\(name)' is not a valid \(T.self): '\(text)'")
        }
        return value
    }

    /// Every value of `name`, in order (`?tag=a&tag=b`).
    public func getAll(_ name: String) -> [String] {
        pairs.filter { $0.name == name }.map(\.value)
    }

    /// Percent-decodes `bytes` with `+` as a space; a malformed escape is kept as written, and
    /// bytes that are not UTF-8 become U+FFFD.
    static func decode(_ bytes: Substring.UTF8View) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if b == UInt8(ascii: "%"),
                      let h1 = bytes.index(i, offsetBy: 1, limitedBy: bytes.endIndex), h1 < bytes.endIndex,
                      let h2 = bytes.index(i, offsetBy: 2, limitedBy: bytes.endIndex), h2 < bytes.endIndex,
                      let hi = hexValue(bytes[h1]), let lo = hexValue(bytes[h2]) {
                out.append(hi << 4 | lo)
                i = h2
            } else {
                out.append(b)
            }
            i = bytes.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
