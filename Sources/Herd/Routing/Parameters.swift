/// The values a route's path captured: `:name` parameters and the `**` tail.
///
/// `router.get("notes/:id") { request, context in try context.parameters.require("id", as: Int.self) }`
/// — the same calls as Hummingbird's `Parameters`. Values are slices of the (percent-decoded)
/// request path: nothing is copied until a value is read.
public struct Parameters: Sendable {
    var values: [(name: String, value: Substring)] = []
    var tail: Substring? = nil

    /// No parameters.
    public init() {}

    /// The value of `:name`, or nil when the route has no such parameter.
    public func get(_ name: String) -> String? {
        for entry in values.reversed() where entry.name == name { return String(entry.value) }
        return nil
    }

    /// The value of `:name` converted to `T`, or nil when missing or not convertible.
    public func get<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) -> T? {
        get(name).flatMap { T($0) }
    }

    /// The value of `:name`; throws ``HTTPError`` 400 when the route has no such parameter.
    public func require(_ name: String) throws -> String {
        guard let value = get(name) else { throw HTTPError(.badRequest, message: "missing path parameter '\(name)'") }
        return value
    }

    /// The value of `:name` as `T`; throws ``HTTPError`` 400 naming the parameter when it is
    /// missing or cannot be converted ("/notes/abc" for an `Int` id).
    public func require<T: LosslessStringConvertible>(_ name: String, as type: T.Type = T.self) throws -> T {
        let text = try require(name)
        guard let value = T(text) else {
            throw HTTPError(.badRequest, message: "path parameter '\(name)' is not a valid \(T.self): '\(text)'")
        }
        return value
    }

    /// What a `**` matched, split at "/" ("a/b/c" -> ["a", "b", "c"]); empty without `**`.
    public func getCatchAll() -> [Substring] {
        tail.map { $0.split(separator: "/") } ?? []
    }

    /// Names and values, in path order.
    public var all: [(name: String, value: String)] {
        values.map { ($0.name, String($0.value)) }
    }

    mutating func append(_ name: String, _ value: Substring) { values.append((name, value)) }
}
