/// One segment of a route's path pattern.
enum PathSegment: Equatable, Sendable, CustomStringConvertible {
    /// Must equal this text.
    case constant(String)
    /// `:name` or `{name}`: any one segment, captured as `name`.
    case parameter(String)
    /// `*`: any one segment, not captured.
    case anything
    /// `**`: the rest of the path (zero or more segments); only last.
    case catchAll

    var description: String {
        switch self {
        case .constant(let s): s
        case .parameter(let name): ":\(name)"
        case .anything: "*"
        case .catchAll: "**"
        }
    }

    /// "notes/:id" -> [.constant("notes"), .parameter("id")]; empty segments are dropped, so
    /// "/notes/" and "notes" are the same pattern.
    static func parse(_ pattern: String) -> [PathSegment] {
        pattern.split(separator: "/").map { part in
            if part == "*" { return .anything }
            if part == "**" { return .catchAll }
            if part.hasPrefix(":"), part.count > 1 { return .parameter(String(part.dropFirst())) }
            if part.hasPrefix("{"), part.hasSuffix("}"), part.count > 2 {
                return .parameter(String(part.dropFirst().dropLast()))
            }
            return .constant(String(part))
        }
    }

    /// "/notes/:id".
    static func format(_ segments: [PathSegment]) -> String {
        "/" + segments.map(\.description).joined(separator: "/")
    }
}
