import HerdLibc
import HerdSys

/// Serves regular files below `root` (GET and HEAD only), with what an nginx user expects:
///
/// - Validators: `Last-Modified` and a strong `ETag` from mtime, size and inode
///   (`StaticConditions.etag(size:mtime:inode:)`). `If-None-Match` (`*`, lists, weak
///   comparison) takes precedence over `If-Modified-Since`; either gives 304. `If-Match` and
///   `If-Unmodified-Since` give 412 when they fail.
/// - `Accept-Ranges: bytes`; a single `Range` (GET only) gives 206 with `Content-Range`, an
///   unsatisfiable one 416 with `Content-Range: bytes */LENGTH`; `If-Range` (a strong ETag or the
///   exact Last-Modified date) falls back to 200 when the file changed. Several ranges give
///   206 `multipart/byteranges` (`StaticRanges`: at most 16, no overlaps, refusals get 200).
/// - Precompressed siblings (nginx's gzip_static, brotli_static): for `x.css`, `x.css.br` or
///   `x.css.gz` is sent with `Content-Encoding` when the client accepts it, `Vary:
///   Accept-Encoding` whenever a sibling exists, the type of `x.css`, and the sibling's own
///   validators.
/// - `Content-Type` from /etc/mime.types when present, else a built-in table (`MIMETypes`).
/// - A directory without a trailing slash: 301 to the slash form (query kept); with it, its
///   `index.html` or 404 (no listings). A file with a trailing slash (`/file.txt/`): 404.
///
/// Paths are resolved segment by segment: empty and "." segments are ignored, ".." anywhere is 404
/// (never an escape, and no information about what exists above the root), a NUL byte is 400.
/// Files are opened with O_NOFOLLOW (a symlink as the last component is 404) and the path of the
/// opened descriptor (/proc/self/fd) must still lie under realpath(root), which catches symlinked
/// directories pointing outside.
public struct StaticHandler: Handler {
    /// Answers at once: no dispatch of other connections while it runs.
    public var mayBlock: Bool { false }

    /// The directory served, as configured (`static:/DIR`).
    public let root: String
    /// realpath(root), re-resolved after at most 1 s so a flipped release symlink is followed;
    /// nil if the root does not resolve (then everything is 404).
    let resolvedRoot: StaticRoot
    /// Dotfile refusal and charset (`StaticOptions`).
    public let options: StaticOptions

    /// A handler serving the files below `root` (an absolute directory path).
    public init(root: String, options: StaticOptions = StaticOptions()) {
        self.root = root
        self.resolvedRoot = StaticRoot(root)
        self.options = options
        _ = MIMETypes.system  // read /etc/mime.types now (worker start), not on a request
    }

    static let openFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK  // NONBLOCK: never hang on a FIFO

    /// An open regular file below the root and what its validators are made of.
    struct OpenFile {
        var fd: Int32
        var size: Int
        var mtime: Int
        var inode: UInt64
    }

    /// Serves `request` from the files below the root; see the type's description.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            var r = HTTPResponse.errorResponse(status: 405)
            r.headers.set("Allow", "GET, HEAD")
            return r
        }
        if request.path.utf8.contains(0) { return .errorResponse(status: 400) }
        guard let base = resolvedRoot.current, request.path.hasPrefix("/") else { return .errorResponse(status: 404) }

        var segments: [Substring] = []
        for seg in request.path.split(separator: "/", omittingEmptySubsequences: true) {
            if seg == "." { continue }
            if seg == ".." { return .errorResponse(status: 404) }
            segments.append(seg)
        }
        if options.denyDotfiles && StaticOptions.isDotPath(segments) { return .errorResponse(status: 404) }
        let trailingSlash = request.path.hasSuffix("/")
        var full = (base == "/" ? "" : base) + "/" + segments.joined(separator: "/")

        guard let fd = try? Sys.open(full, StaticHandler.openFlags) else { return .errorResponse(status: 404) }
        guard let st = try? Sys.fstat(fd) else { Sys.close(fd); return .errorResponse(status: 404) }
        var fileName = segments.last.map(String.init) ?? ""
        if (st.st_mode & S_IFMT) == S_IFDIR {
            Sys.close(fd)
            guard trailingSlash || segments.isEmpty else {
                // nginx's behaviour: the directory's URL is the slash form.
                let location = StaticHandler.percentEncodePath("/" + segments.joined(separator: "/") + "/")
                    + (request.query.map { "?" + $0 } ?? "")
                var r = HTTPResponse.text(301, "301 Moved Permanently\n")
                r.headers.set("Location", location)
                return r
            }
            full += segments.isEmpty ? "index.html" : "/index.html"
            fileName = "index.html"
        } else if trailingSlash {
            // "/file.txt/" names a directory that does not exist.
            Sys.close(fd)
            return .errorResponse(status: 404)
        }
        // A file: the descriptor already open is used (one open per request, issue 25).
        let opened = (st.st_mode & S_IFMT) == S_IFDIR ? openRegular(full, base: base) : checkRegular(fd, st, base: base)
        guard var file = opened else { return .errorResponse(status: 404) }

        // Precompressed siblings, best first. Looked for only when the client sends
        // Accept-Encoding (a client without it takes the identity file, cached or not).
        var encoding: String? = nil
        var hasVariant = false
        if let acceptEncoding = request.headers["Accept-Encoding"] {
            for (coding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
                guard let variant = openRegular(full + suffix, base: base) else { continue }
                hasVariant = true
                if encoding == nil, StaticConditions.accepts(acceptEncoding, coding) {
                    Sys.close(file.fd)
                    file = variant
                    encoding = coding
                } else {
                    Sys.close(variant.fd)
                }
                if encoding != nil { break }
            }
        }

        let etag = StaticConditions.etag(size: file.size, mtime: file.mtime, inode: file.inode)
        var headers = HTTPHeaders()
        headers.add("Last-Modified", HTTPDate.format(epochSeconds: file.mtime))
        headers.add("ETag", etag)
        if hasVariant { headers.add("Vary", "Accept-Encoding") }

        // Preconditions in RFC 9110 13.2.2's order.
        if let ifMatch = request.headers["If-Match"] {
            if !(StaticConditions.parseTagList(ifMatch).map { StaticConditions.strongMatch($0, etag: etag) } ?? false) {
                Sys.close(file.fd)
                return .errorResponse(status: 412)
            }
        } else if let ius = request.headers["If-Unmodified-Since"], let date = StaticConditions.parseHTTPDate(ius),
                  file.mtime > date {
            Sys.close(file.fd)
            return .errorResponse(status: 412)
        }
        if let ifNoneMatch = request.headers["If-None-Match"] {
            // Present: If-Modified-Since is ignored, even when this one is malformed.
            if let list = StaticConditions.parseTagList(ifNoneMatch), StaticConditions.noneMatchHits(list, etag: etag) {
                Sys.close(file.fd)
                return HTTPResponse(status: 304, headers: headers, body: .bytes([]))
            }
        } else if let ims = request.headers["If-Modified-Since"], let date = StaticConditions.parseHTTPDate(ims),
                  file.mtime <= date {
            Sys.close(file.fd)
            return HTTPResponse(status: 304, headers: headers, body: .bytes([]))
        }

        let contentType = MIMETypes.contentType(forFileName: fileName, charset: options.charset)
        headers.add("Content-Type", contentType)
        if let encoding { headers.add("Content-Encoding", encoding) }
        headers.add("Accept-Ranges", "bytes")

        // Range applies to GET only (RFC 9110 14.2); HEAD shows what a plain GET would get.
        if request.method == "GET", let range = request.headers["Range"], ifRangeHolds(request, etag: etag, mtime: file.mtime) {
            switch StaticRanges.parse(range, length: file.size) {
            case .full:
                break
            case .unsatisfiable:
                Sys.close(file.fd)
                var r = HTTPResponse.errorResponse(status: 416)
                r.headers.set("Content-Range", "bytes */\(file.size)")
                return r
            case .ranges(let ranges) where ranges.count == 1:
                let r = ranges[0]
                headers.add("Content-Range", "bytes \(r.lowerBound)-\(r.upperBound)/\(file.size)")
                return HTTPResponse(status: 206, headers: headers,
                                    body: .file(fd: file.fd, offset: r.lowerBound, count: r.count))
            case .ranges(let ranges):
                // RFC 9110 14.6: each part carries the type and its Content-Range.
                let boundary = StaticRanges.makeBoundary()
                let body = StaticRanges.multipartBody(fd: file.fd, ranges: ranges, length: file.size,
                                                      contentType: contentType, boundary: boundary)
                Sys.close(file.fd)
                guard let body else { return .errorResponse(status: 500) }
                headers.set("Content-Type", "multipart/byteranges; boundary=" + boundary)
                return HTTPResponse(status: 206, headers: headers, body: .bytes(body))
            }
        }
        return HTTPResponse(status: 200, headers: headers, body: .file(fd: file.fd, offset: 0, count: file.size))
    }

    /// If-Range: the range is served only if the validator still describes the file (a strong
    /// ETag, or exactly the Last-Modified date); otherwise the whole new file is sent.
    func ifRangeHolds(_ request: HTTPRequest, etag: String, mtime: Int) -> Bool {
        guard let value = request.headers["If-Range"] else { return true }
        let trimmed = Substring(value).trimmingSpacesAndTabs()
        if trimmed.hasPrefix("\"") || trimmed.hasPrefix("W/") {
            guard let list = StaticConditions.parseTagList(String(trimmed)), list.count == 1 else { return false }
            return StaticConditions.strongMatch(list, etag: etag) && list != [.any]
        }
        return StaticConditions.parseHTTPDate(String(trimmed)) == mtime
    }

    /// Opens `path` if it is a regular file inside the root (no symlink as the last component).
    func openRegular(_ path: String, base: String) -> OpenFile? {
        guard let fd = try? Sys.open(path, StaticHandler.openFlags) else { return nil }
        guard let st = try? Sys.fstat(fd) else { Sys.close(fd); return nil }
        return checkRegular(fd, st, base: base)
    }

    /// `fd` (with its fstat `st`) as an OpenFile if it is a regular file inside the root; else
    /// closes it.
    func checkRegular(_ fd: Int32, _ st: stat, base: String) -> OpenFile? {
        guard (st.st_mode & S_IFMT) == S_IFREG, isUnderRoot(fd: fd, base: base) else {
            Sys.close(fd)
            return nil
        }
        return OpenFile(fd: fd, size: Int(st.st_size), mtime: Int(st.st_mtim.tv_sec), inode: UInt64(st.st_ino))
    }

    /// Percent-encodes a decoded path for a Location field: unreserved characters, sub-delims,
    /// ':', '@' and '/' stay as they are.
    static func percentEncodePath(_ path: String) -> String {
        var out = ""
        let hex = Array("0123456789ABCDEF")
        for b in path.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                out.unicodeScalars.append(UnicodeScalar(b))
            default:
                if "-._~!$&'()*+,;=:@/".utf8.contains(b) {
                    out.unicodeScalars.append(UnicodeScalar(b))
                } else {
                    out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
                }
            }
        }
        return out
    }

    /// Is the file actually opened as `fd` inside the root? Uses the kernel's view of the
    /// descriptor's path, so there is no window between the check and the open.
    private func isUnderRoot(fd: Int32, base: String) -> Bool {
        guard let path = Sys.readLink("/proc/self/fd/\(fd)") else { return false }
        if base == "/" { return path.hasPrefix("/") }
        return path == base || path.hasPrefix(base + "/")
    }

    /// Content-Type for a file name (see `MIMETypes.contentType(forFileName:)`).
    public static func contentType(forFileName name: String) -> String {
        MIMETypes.contentType(forFileName: name)
    }
}
