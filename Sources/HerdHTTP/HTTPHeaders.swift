/// An ordered list of header fields. Lookups are case-insensitive (ASCII); order and the
/// original spelling of names are preserved, and repeated names are allowed.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// One field: its name as spelled and its value.
    public typealias Element = (name: String, value: String)

    /// Stored as a struct rather than a tuple: the compiler then knows how to copy and destroy
    /// the array's elements directly instead of going through the runtime's generic tuple code.
    @usableFromInline struct Field: Sendable {
        var name: String
        var value: String
    }

    /// Any change forgets the prepared form.
    private var fields: [Field] = [] { didSet { prepared = nil } }

    /// The fields as a response head carries them, checked and serialized once
    /// (`prepareForResponses()`); nil after any change.
    package private(set) var prepared: PreparedFields? = nil

    /// No fields.
    public init() {}

    /// The fields `pairs` (name, value), in order.
    public init(_ pairs: [(String, String)]) {
        fields = pairs.map { Field(name: $0.0, value: $0.1) }
    }

    /// `["Content-Type": "text/plain"]`: the fields in literal order.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// Number of fields (repeated names count separately).
    public var count: Int { fields.count }

    /// True when there is no field.
    public var isEmpty: Bool { fields.isEmpty }

    /// Room for `n` fields without reallocating (the parser knows the count up front).
    public mutating func reserveCapacity(_ n: Int) { fields.reserveCapacity(n) }

    /// First value for `name`, or nil.
    public subscript(name: String) -> String? {
        for f in fields where ASCII.caseInsensitiveEquals(f.name, name) { return f.value }
        return nil
    }

    /// All values for `name`, in order.
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        for f in fields where ASCII.caseInsensitiveEquals(f.name, name) { out.append(f.value) }
        return out
    }

    /// Do two field names match (ASCII case-insensitive, as lookups compare them)?
    package static func namesEqual(_ a: String, _ b: String) -> Bool { ASCII.caseInsensitiveEquals(a, b) }

    /// Is there a field named `name` (case-insensitive)?
    public func contains(_ name: String) -> Bool { self[name] != nil }

    /// Appends a field (keeps existing ones with the same name).
    public mutating func add(_ name: String, _ value: String) {
        fields.append(Field(name: name, value: value))
    }

    /// Replaces all fields named `name` by a single one (at the position of the first, else appended).
    public mutating func set(_ name: String, _ value: String) {
        if let i = fields.firstIndex(where: { ASCII.caseInsensitiveEquals($0.name, name) }) {
            fields[i] = Field(name: name, value: value)
            var j = fields.count - 1
            while j > i {
                if ASCII.caseInsensitiveEquals(fields[j].name, name) { fields.remove(at: j) }
                j -= 1
            }
        } else {
            fields.append(Field(name: name, value: value))
        }
    }

    /// Removes all fields named `name`.
    public mutating func remove(_ name: String) {
        fields.removeAll { ASCII.caseInsensitiveEquals($0.name, name) }
    }

    /// Does any comma-separated element of any `name` field equal `token` (case-insensitive)?
    /// Allocation-free: it runs for every request (`Connection: close` / `keep-alive`).
    public func containsToken(_ token: String, in name: String) -> Bool {
        for f in fields where ASCII.caseInsensitiveEquals(f.name, name) {
            let found = ASCII.withBytes(f.value) { v in
                ASCII.withBytes(token) { t in
                    !ASCII.forEachListElement(v) { element in
                        guard element.count == t.count else { return true }
                        for i in 0..<t.count where ASCII.lower(element[i]) != ASCII.lower(t[i]) { return true }
                        return false // found: stop
                    }
                }
            }
            if found { return true }
        }
        return false
    }

    /// Serializes the fields as `HTTPResponseHead.serialize` would write them and keeps the
    /// result with the fields: for fields sent unchanged with many responses (a static file's
    /// validators and type, made once per lookup), a response then copies one block instead
    /// of checking and appending field by field. A later change to the fields drops it.
    package mutating func prepareForResponses() {
        prepared = PreparedFields(self)
    }

    /// Calls `body` with each field in order (no tuple iterator in between).
    @inline(__always)
    func forEachField(_ body: (String, String) -> Void) {
        for f in fields { body(f.name, f.value) }
    }

    /// Iterates the fields in order.
    public struct Iterator: IteratorProtocol {
        private var base: IndexingIterator<[Field]>
        init(_ fields: [Field]) { base = fields.makeIterator() }
        /// The next field, or nil after the last.
        public mutating func next() -> Element? {
            guard let f = base.next() else { return nil }
            return (name: f.name, value: f.value)
        }
    }

    /// An iterator over the fields in order.
    public func makeIterator() -> Iterator { Iterator(fields) }

    /// `Name: value` lines, for logs and tests.
    public var description: String {
        fields.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    }
}

/// Response fields checked and serialized once (`HTTPHeaders.prepareForResponses()`).
package final class PreparedFields: Sendable {
    /// The `Name: value\r\n` lines a head carries for the fields.
    package let bytes: [UInt8]
    /// Whether the fields name Server or Date (then the serializer adds none).
    package let hasServer: Bool
    package let hasDate: Bool

    init(_ headers: HTTPHeaders) {
        var out: [UInt8] = []
        HTTPResponseHead.appendHandlerFields(headers, into: &out)
        bytes = out
        (hasServer, hasDate) = HTTPResponseHead.namesServerOrDate(headers)
    }
}
