/// An ordered list of header fields. Lookups are case-insensitive (ASCII); order and the
/// original spelling of names are preserved, and repeated names are allowed.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public typealias Element = (name: String, value: String)

    private var fields: [Element] = []

    public init() {}

    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { (name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// Number of fields (repeated names count separately).
    public var count: Int { fields.count }

    public var isEmpty: Bool { fields.isEmpty }

    /// First value for `name`, or nil.
    public subscript(name: String) -> String? {
        for f in fields where ASCII.caseInsensitiveEquals(f.name, name) { return f.value }
        return nil
    }

    /// All values for `name`, in order.
    public func values(_ name: String) -> [String] {
        fields.filter { ASCII.caseInsensitiveEquals($0.name, name) }.map(\.value)
    }

    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Appends a field (keeps existing ones with the same name).
    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces all fields named `name` by a single one (at the position of the first, else appended).
    public mutating func set(_ name: String, _ value: String) {
        if let i = fields.firstIndex(where: { ASCII.caseInsensitiveEquals($0.name, name) }) {
            fields[i] = (name: name, value: value)
            var j = fields.count - 1
            while j > i {
                if ASCII.caseInsensitiveEquals(fields[j].name, name) { fields.remove(at: j) }
                j -= 1
            }
        } else {
            fields.append((name: name, value: value))
        }
    }

    /// Removes all fields named `name`.
    public mutating func remove(_ name: String) {
        fields.removeAll { ASCII.caseInsensitiveEquals($0.name, name) }
    }

    /// Does any comma-separated element of any `name` field equal `token` (case-insensitive)?
    public func containsToken(_ token: String, in name: String) -> Bool {
        for v in values(name) {
            for t in ASCII.commaList(v) where ASCII.caseInsensitiveEquals(String(t), token) { return true }
        }
        return false
    }

    public func makeIterator() -> IndexingIterator<[Element]> { fields.makeIterator() }

    public var description: String {
        fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }
}
