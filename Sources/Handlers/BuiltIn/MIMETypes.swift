import HerdSys

/// Content types by file extension: /etc/mime.types (Debian's media-types package, the file
/// nginx's and Apache's Debian packages read too) when it is present, a built-in table for
/// extensions it lacks or when it is absent.
package enum MIMETypes {
    /// The system table, read once per process at first use (a worker reads it when it builds
    /// its static handler, not on a request).
    static let system: [String: String] = load(path: "/etc/mime.types") ?? [:]

    /// Used when /etc/mime.types is absent or does not list the extension.
    static let builtIn: [String: String] = [
        "html": "text/html", "htm": "text/html", "css": "text/css",
        "js": "text/javascript", "mjs": "text/javascript", "json": "application/json",
        "txt": "text/plain", "xml": "application/xml", "svg": "image/svg+xml",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "avif": "image/avif", "ico": "image/x-icon", "wasm": "application/wasm",
        "pdf": "application/pdf", "woff": "font/woff", "woff2": "font/woff2",
        "mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "ogg": "audio/ogg",
        "csv": "text/csv", "md": "text/markdown", "zip": "application/zip", "gz": "application/gzip",
        "tar": "application/x-tar", "map": "application/json", "webmanifest": "application/manifest+json",
    ]

    /// Types whose definition implies UTF-8 (RFC 8259 JSON, RFC 9239 JavaScript, SVG as served
    /// in practice): they always get `; charset=utf-8`. Other text types get a charset only when
    /// one is configured (nginx's default: none).
    static let utf8Only: Set<String> = [
        "application/json", "application/javascript", "text/javascript", "image/svg+xml",
        "application/manifest+json", "application/ld+json",
    ]

    /// Types that are text whatever their top-level type: a configured charset applies to them.
    static let textLike: Set<String> = [
        "application/json", "application/javascript", "application/xml", "image/svg+xml",
        "application/manifest+json", "application/ld+json", "application/rss+xml", "application/atom+xml",
    ]

    /// Parses a mime.types file: `type/subtype ext ext ...` per line, `#` comments. nil when the
    /// file cannot be read. The first type listed for an extension wins.
    package static func load(path: String) -> [String: String]? {
        // 16 MiB: Debian's /etc/mime.types is 60 KB; a bigger file is not a mime.types.
        guard let text = try? Sys.readFile(path, limit: 16 << 20) else { return nil }
        return parse(String(decoding: text, as: UTF8.self))
    }

    /// Parses the text of a mime.types file (see `load(path:)`).
    package static func parse(_ text: String) -> [String: String] {
        var table: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard words.count >= 2, words[0].contains("/") else { continue }
            let type = words[0].lowercased()
            for ext in words.dropFirst() {
                let key = ext.lowercased()
                if table[key] == nil { table[key] = type }
            }
        }
        return table
    }

    /// The media type for an extension (lowercase, without the dot), or nil.
    package static func type(forExtension ext: String) -> String? {
        system[ext] ?? builtIn[ext]
    }

    /// `Content-Type` for a file name: by its extension (case-insensitive),
    /// `application/octet-stream` when unknown or without an extension. With `charset`, every
    /// text type gets `; charset=CHARSET`; without, only the UTF-8-only types get `; charset=utf-8`.
    package static func contentType(forFileName name: String, charset: String? = nil) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "application/octet-stream" }
        let ext = String(name[name.index(after: dot)...]).lowercased()
        guard let type = type(forExtension: ext) else { return "application/octet-stream" }
        if let charset, type.hasPrefix("text/") || textLike.contains(type) || utf8Only.contains(type) {
            return type + "; charset=" + charset
        }
        return utf8Only.contains(type) ? type + "; charset=utf-8" : type
    }
}
