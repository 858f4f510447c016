import FoundationEssentials
import Handlers

extension HTTPRequest {
    /// The body decoded from JSON as `T`, as Hummingbird's `request.decode(as:context:)`.
    ///
    /// Throws ``HTTPError``: 415 when `Content-Type` is not JSON (`application/json` or a
    /// `+json` type), 400 for a body that is not valid JSON or does not fit `T`, with a message
    /// that names the field (`missing field 'title'`, `field 'tags[2]': expected String`).
    /// Bodies over `--max-body` never get here: the server answers 413 itself.
    public func decode<T: Decodable>(as type: T.Type, context: RequestContext) throws -> T {
        guard Self.isJSON(headers["Content-Type"]) else {
            throw HTTPError(.unsupportedMediaType, message: "Content-Type must be application/json")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch let error as DecodingError {
            throw HTTPError(.badRequest, message: Self.describe(error))
        }
    }

    /// Is `contentType` a JSON media type (parameters such as charset ignored)?
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let type = contentType.split(separator: ";").first.map { $0.trimmingSpacesAndTabs().lowercased() } ?? ""
        return type == "application/json" || (type.hasPrefix("application/") && type.hasSuffix("+json"))
    }

    /// A message for the client that says which field is wrong, without Swift type internals.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for key in keys {
                if let i = key.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
            }
            return out
        }
        switch error {
        case .keyNotFound(let key, let c):
            return "invalid JSON: missing field '\(path(c.codingPath + [key]))'"
        case .typeMismatch(let type, let c):
            return "invalid JSON: field '\(path(c.codingPath))': expected \(jsonTypeName(type))"
        case .valueNotFound(let type, let c):
            return "invalid JSON: field '\(path(c.codingPath))': expected \(jsonTypeName(type)), got null"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "invalid JSON: the body is not well-formed JSON"
                : "invalid JSON: field '\(path(c.codingPath))': invalid value"
        @unknown default:
            return "invalid JSON"
        }
    }

    /// "string", "number", ... for Swift types a client would not know.
    static func jsonTypeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is Substring.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type, is Int16.Type, is Int8.Type,
             is UInt32.Type, is UInt16.Type, is UInt8.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        default:
            if "\(type)".hasPrefix("Array") { "an array" }
            else if "\(type)".hasPrefix("Dictionary") { "an object" }
            else { "\(type)" }
        }
    }
}
