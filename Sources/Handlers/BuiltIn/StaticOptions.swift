/// Options of the static handler, written after the directory in its spec:
/// `static:/DIR;dotfiles=deny;charset=utf-8`.
///
/// - `dotfiles=deny|allow` (default allow, as nginx): `deny` answers 404 for every path with a
///   segment that starts with "." (`/.git/config`, `/.env`, `/a/.htpasswd`), as deployments expect.
/// - `charset=NAME`: adds `; charset=NAME` to every text type, like nginx's `charset NAME;`.
///   Without it only types whose definition implies UTF-8 (JSON, JavaScript, SVG) carry
///   `; charset=utf-8`; `text/html`, `text/plain`, `text/css` get none, as with nginx's default.
/// - `cache=on|off` (default on): the per-worker open-file cache (`StaticFileCache`, 1 s
///   validity, like nginx's `open_file_cache_valid 1s`); off: every request opens the file, so
///   a change is seen at once.
public struct StaticOptions: Sendable, Equatable {
    /// Refuse (404) paths with a segment starting with ".".
    public var denyDotfiles = false
    /// The charset added to all text types, nil: only to the UTF-8-only types.
    public var charset: String? = nil
    /// Reuse lookups for 1 s (`StaticFileCache`).
    public var openFileCache = true

    public init() {}

    /// Splits a spec argument into the root and its options; throws a message for an unknown
    /// or malformed option.
    public static func parse(_ argument: String) throws(StaticOptionError) -> (root: String, options: StaticOptions) {
        var parts = argument.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
        let root = parts.removeFirst()
        var options = StaticOptions()
        for part in parts {
            let kv = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, !kv[1].isEmpty else { throw StaticOptionError(message: "malformed static option '\(part)' (want key=value)") }
            switch (kv[0], kv[1]) {
            case ("dotfiles", "deny"): options.denyDotfiles = true
            case ("dotfiles", "allow"): options.denyDotfiles = false
            case ("cache", "on"): options.openFileCache = true
            case ("cache", "off"): options.openFileCache = false
            case ("charset", let name):
                // A token only: it goes into a header field as it is.
                guard name.utf8.allSatisfy({ isTokenByte($0) }) else {
                    throw StaticOptionError(message: "static option charset: '\(name)' is not a charset name")
                }
                options.charset = name
            default:
                throw StaticOptionError(message: "unknown static option '\(part)' (known: dotfiles=deny|allow, charset=NAME, cache=on|off)")
            }
        }
        return (root, options)
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "-_.:+".utf8.contains(b)
        }
    }

    /// Does the path (already split into segments) name a dotfile or something inside a
    /// dot-directory?
    static func isDotPath<S: Collection>(_ segments: S) -> Bool where S.Element == Substring {
        segments.contains { $0.hasPrefix(".") }
    }
}

/// A static option that cannot be used.
public struct StaticOptionError: Error, Sendable {
    public let message: String
}
