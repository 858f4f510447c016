import Glibc

/// Serves regular files below `root` (GET and HEAD only).
///
/// Paths are resolved segment by segment: empty and "." segments are ignored, ".." anywhere is 404
/// (never an escape, and no information about what exists above the root), a NUL byte is 400.
/// Files are opened with O_NOFOLLOW (a symlink as the last component is 404) and the path of the
/// opened descriptor (/proc/self/fd) must still lie under realpath(root), which catches symlinked
/// directories pointing outside. Directories serve their `index.html` or 404 (no listings).
public struct StaticHandler: Handler {
    /// Answers at once: no dispatch of other connections while it runs.
    public var mayBlock: Bool { false }

    public let root: String
    /// realpath(root) at creation; nil if the root does not resolve (then everything is 404).
    let canonicalRoot: String?

    public init(root: String) {
        self.root = root
        self.canonicalRoot = StaticHandler.realPath(root)
    }

    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            var r = HTTPResponse.errorResponse(status: 405)
            r.headers.set("Allow", "GET, HEAD")
            return r
        }
        if request.path.utf8.contains(0) { return .errorResponse(status: 400) }
        guard let base = canonicalRoot, request.path.hasPrefix("/") else { return .errorResponse(status: 404) }

        var segments: [Substring] = []
        for seg in request.path.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." { return .errorResponse(status: 404) }
            segments.append(seg)
        }
        let full = (base == "/" ? "" : base) + "/" + segments.joined(separator: "/")

        let flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK  // NONBLOCK: never hang on a FIFO
        var fd = open(full, flags)
        guard fd >= 0 else { return .errorResponse(status: 404) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); return .errorResponse(status: 404) }
        var fileName = segments.last.map(String.init) ?? ""
        if (st.st_mode & S_IFMT) == S_IFDIR {
            let ifd = openat(fd, "index.html", flags)
            close(fd)
            guard ifd >= 0 else { return .errorResponse(status: 404) }
            fd = ifd
            fileName = "index.html"
            guard fstat(fd, &st) == 0 else { close(fd); return .errorResponse(status: 404) }
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, isUnderRoot(fd: fd, base: base) else {
            close(fd)
            return .errorResponse(status: 404)
        }

        let lastModified = HTTPDate.format(epochSeconds: Int(st.st_mtim.tv_sec))
        var headers = HTTPHeaders()
        headers.add("Last-Modified", lastModified)
        if let ims = request.headers["If-Modified-Since"], ims == lastModified {
            close(fd)
            return HTTPResponse(status: 304, headers: headers, body: .bytes([]))
        }
        headers.add("Content-Type", StaticHandler.contentType(forFileName: fileName))
        return HTTPResponse(status: 200, headers: headers,
                            body: .file(fd: fd, offset: 0, count: Int(st.st_size)))
    }

    /// Is the file actually opened as `fd` inside the root? Uses the kernel's view of the
    /// descriptor's path, so there is no window between the check and the open.
    private func isUnderRoot(fd: Int32, base: String) -> Bool {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/fd/\(fd)", &buf, buf.count - 1)
        guard n > 0 else { return false }
        let path = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if base == "/" { return path.hasPrefix("/") }
        return path == base || path.hasPrefix(base + "/")
    }

    static func realPath(_ p: String) -> String? {
        guard let r = realpath(p, nil) else { return nil }
        defer { free(r) }
        return String(cString: r)
    }

    static let textTypes: [String: String] = [
        "html": "text/html", "htm": "text/html", "css": "text/css",
        "js": "text/javascript", "mjs": "text/javascript", "json": "application/json",
        "txt": "text/plain", "xml": "application/xml", "svg": "image/svg+xml",
    ]
    static let binaryTypes: [String: String] = [
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "webp": "image/webp", "ico": "image/x-icon", "wasm": "application/wasm",
        "pdf": "application/pdf", "woff": "font/woff", "woff2": "font/woff2",
        "mp4": "video/mp4", "webm": "video/webm",
    ]

    /// Content-Type from the file extension (case-insensitive); text types get `; charset=utf-8`.
    public static func contentType(forFileName name: String) -> String {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "application/octet-stream" }
        let ext = String(name[name.index(after: dot)...]).lowercased()
        if let t = textTypes[ext] { return t + "; charset=utf-8" }
        return binaryTypes[ext] ?? "application/octet-stream"
    }
}
