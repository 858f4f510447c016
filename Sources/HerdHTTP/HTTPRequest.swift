/// A parsed HTTP/1.x request.
public struct HTTPRequest: Sendable {
    /// Request method, case-sensitive as sent ("GET", "POST", ...).
    public var method: String
    /// The raw request-target as sent ("/a%20b?x=1", "*", "http://host/p", "host:443").
    public var target: String
    /// Percent-decoded path part of the target (up to '?'). For absolute-form targets
    /// ("http://host/p?q") this is the path of the URI ("/p"); for "*" it is "*".
    public var path: String
    /// Raw (not decoded) query string after '?', or nil if the target has no '?'.
    public var query: String?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (HTTP/1.2..1.9 are treated as 1.1).
    public var versionMinor: Int
    /// Header fields as received (names as spelled, in order; lookups case-insensitive).
    public var headers: HTTPHeaders {
        didSet { connectionOptions = nil }  // no longer what the parser saw
    }
    /// Decoded body (chunked encoding already removed).
    public var body: [UInt8]

    /// Full memberwise initialiser.
    public init(method: String, target: String, path: String, query: String?, versionMinor: Int,
                headers: HTTPHeaders, body: [UInt8]) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.versionMinor = versionMinor
        self.headers = headers
        self.body = body
    }

    /// Convenience for tests: derives `path` (percent-decoded; the raw text if decoding fails)
    /// and `query` from `target`.
    public init(method: String = "GET", target: String, versionMinor: Int = 1,
                headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        let split = HTTPRequest.splitTarget(Array(target.utf8))
        let rawPath = split.path
        let path = percentDecode(rawPath).flatMap { strictUTF8($0) } ?? String(decoding: rawPath, as: UTF8.self)
        self.init(method: method, target: target, path: path,
                  query: split.query.map { String(decoding: $0, as: UTF8.self) },
                  versionMinor: versionMinor, headers: headers, body: body)
    }

    /// The `close` and `keep-alive` options of the Connection fields, as the parser found them
    /// while reading the head (so keepAlive does not search the fields again for every request);
    /// nil when not known: set by the memberwise initialiser, cleared when `headers` change.
    struct ConnectionOptions: Sendable {
        var close = false
        var keepAlive = false

        init() {}

        init(_ headers: HTTPHeaders) {
            close = headers.containsToken("close", in: "Connection")
            keepAlive = headers.containsToken("keep-alive", in: "Connection")
        }

        /// Notes the options in one Connection field value.
        mutating func note(_ value: UnsafeRawBufferPointer) {
            ASCII.forEachListElement(value) { option in
                if ASCII.equalsLowercase(option, "close") { close = true }
                else if ASCII.equalsLowercase(option, "keep-alive") { keepAlive = true }
                return true
            }
        }
    }
    var connectionOptions: ConnectionOptions? = nil

    /// HTTP/1.1: persistent unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    public var keepAlive: Bool {
        // Not `??`: its autoclosure would copy `headers` (a retain and a release per request).
        let options: ConnectionOptions
        if let known = connectionOptions { options = known } else { options = ConnectionOptions(headers) }
        if options.close { return false }
        return versionMinor >= 1 || options.keepAlive
    }

    /// True for HEAD: herdd sends the head of the response and drops the body.
    public var isHEAD: Bool { method == "HEAD" }

    /// Splits a raw target into (raw path, raw query). Absolute-form targets ("scheme://authority/p")
    /// yield their path ("/" when empty). Fragments are not expected in request targets; a '#' is
    /// treated as part of the path/query like any other byte.
    static func splitTarget(_ t: [UInt8]) -> (path: ArraySlice<UInt8>, query: ArraySlice<UInt8>?) {
        var start = t.startIndex
        // absolute-form: "http://host[:port]/path?query"
        if let f = t.first, f != ASCII.slash, let schemeEnd = findSchemeSeparator(t) {
            let authStart = schemeEnd + 3
            var i = authStart
            while i < t.endIndex, t[i] != ASCII.slash, t[i] != ASCII.question { i += 1 }
            start = i
            if i == t.endIndex || t[i] == ASCII.question {
                // No path: the path is "/" and anything after '?' is the query.
                let q: ArraySlice<UInt8>? = i < t.endIndex ? t[(i + 1)...] : nil
                return (rootSlash[...], q)
            }
        }
        if let q = t[start...].firstIndex(of: ASCII.question) {
            return (t[start..<q], t[(q + 1)...])
        }
        return (t[start...], nil)
    }

    private static let rootSlash: [UInt8] = [ASCII.slash]

    /// Index of "://" when `t` starts with `scheme://` (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )).
    private static func findSchemeSeparator(_ t: [UInt8]) -> Int? {
        var i = t.startIndex
        guard i < t.endIndex, (65...90).contains(t[i]) || (97...122).contains(t[i]) else { return nil }
        i += 1
        while i < t.endIndex {
            let c = t[i]
            if (65...90).contains(c) || (97...122).contains(c) || (48...57).contains(c) || c == 43 || c == 45 || c == 46 {
                i += 1
                continue
            }
            break
        }
        guard i + 2 < t.endIndex, t[i] == ASCII.colon, t[i + 1] == ASCII.slash, t[i + 2] == ASCII.slash else { return nil }
        return i
    }
}
