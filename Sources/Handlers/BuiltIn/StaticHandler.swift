import HerdLibc
import HerdSys
import Synchronization

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
/// Files are opened with O_NOFOLLOW (a symlink as the last component is 404) by openat2 below an
/// fd of realpath(root) with RESOLVE_BENEATH, so the kernel refuses a symlinked directory that
/// leads outside. Where openat2 refuses (an absolute symlink, which may lead back inside) or is
/// missing (ENOSYS), the full path is opened and the path of the opened descriptor
/// (/proc/self/fd) must lie under realpath(root).
///
/// Lookups (those checks included) are reused for 1 s by a per-worker open-file cache
/// (`StaticFileCache`, nginx's `open_file_cache` with `open_file_cache_valid 1s`): a file up to
/// 8 KiB is then answered from memory, a larger one from its cached fd. A replaced, edited or
/// deleted file is seen within that second. `;cache=off` looks up on every request.
public struct StaticHandler: Handler {
    /// Answers at once: no dispatch of other connections while it runs.
    public var mayBlock: Bool { false }

    /// The directory served, as configured (`static:/DIR`).
    public let root: String
    /// realpath(root), re-resolved after at most 1 s so a flipped release symlink is followed;
    /// nil if the root does not resolve (then everything is 404).
    let resolvedRoot: StaticRoot
    /// Dotfile refusal, charset and the open-file cache switch (`StaticOptions`).
    public let options: StaticOptions
    /// This worker's open-file cache (`StaticFileCache`: lookups reused for 1 s).
    let files: StaticFileCacheBox

    /// A handler serving the files below `root` (an absolute directory path).
    public init(root: String, options: StaticOptions = StaticOptions()) {
        self.root = root
        self.resolvedRoot = StaticRoot(root)
        self.options = options
        self.files = StaticFileCacheBox(limits: options.openFileCache ? .standard : .off)
        _ = MIMETypes.system  // read /etc/mime.types now (worker start), not on a request
    }

    static let openFlags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK  // NONBLOCK: never hang on a FIFO

    /// Serves `request` from the files below the root; see the type's description.
    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            var r = HTTPResponse.errorResponse(status: 405)
            r.headers.set("Allow", "GET, HEAD")
            return r
        }
        let shape = StaticHandler.scanPath(request.path)
        if shape.hasNUL { return .errorResponse(status: 400) }
        // The root's and the cache's validity periods are measured with the worker's recent
        // clock reading (no clock read per request: it is at most a turn old, milliseconds
        // against the 1 s validity).
        let now = context.recentNanos != 0 ? context.recentNanos : monotonicNanos()
        guard let root = resolvedRoot.current(now: now), request.path.utf8.first == UInt8(ascii: "/") else { return .errorResponse(status: 404) }

        // `normal`: the path as its segments joined ("/" for the root).
        let normal: String
        if shape.plainLastSlash != nil {
            // Already normal (most requests): no split and join.
            normal = request.path
        } else {
            var segments: [Substring] = []
            for seg in request.path.split(separator: "/", omittingEmptySubsequences: true) {
                if seg == "." { continue }
                if seg == ".." { return .errorResponse(status: 404) }
                segments.append(seg)
            }
            if options.denyDotfiles && StaticOptions.isDotPath(segments) { return .errorResponse(status: 404) }
            normal = "/" + segments.joined(separator: "/")
        }
        let trailingSlash = shape.plainLastSlash == nil && request.path.utf8.last == UInt8(ascii: "/")
        // Cache keys are paths below the root (the cache forgets a former root's entries); the
        // full path is joined only when a lookup is made. `load` is static and the closure
        // holds the root and the charset only, not a copy of the handler.
        var key = normal
        let charset = options.charset
        // A local function, not a closure in a constant: that one would be allocated per request.
        func lookup(_ key: String) -> StaticLookup {
            files.lookup(key, root: root.path, now: now) { StaticHandler.load($0, root: root, charset: charset) }
        }

        var found = lookup(key)
        if case .directory = found {
            guard trailingSlash || normal == "/" else {
                // nginx's behaviour: the directory's URL is the slash form.
                let location = StaticHandler.percentEncodePath(normal + "/")
                    + (request.query.map { "?" + $0 } ?? "")
                var r = HTTPResponse.text(301, "301 Moved Permanently\n")
                r.headers.set("Location", location)
                return r
            }
            key += normal == "/" ? "index.html" : "/index.html"
            found = lookup(key)
        } else if trailingSlash {
            // "/file.txt/" names a directory that does not exist.
            return .errorResponse(status: 404)
        }
        guard case .file(var file) = found else { return .errorResponse(status: 404) }
        // The request fields read below, found in one pass.
        let asked = AskedFields(request.headers)
        // Nothing asked beyond the file (most requests): its plain 200, made once per lookup.
        // (Without Accept-Encoding no sibling is looked for, as below.)
        if asked.isEmpty, let plain = file.plainResponse { return plain }
        // The type of the name asked for (a precompressed sibling has it too); made once per
        // lookup (`load`), of the cache key's last component.
        let contentType = file.contentType ?? MIMETypes.contentType(forFileName: StaticHandler.lastComponent(key), charset: options.charset)

        // Precompressed siblings, best first. Looked for only when the client sends
        // Accept-Encoding (a client without it takes the identity file, cached or not).
        var encoding: String? = nil
        var hasVariant = false
        if let acceptEncoding = asked.acceptEncoding {
            for (coding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
                guard case .file(let variant) = lookup(key + suffix) else { continue }
                hasVariant = true
                if StaticConditions.accepts(acceptEncoding, coding) {
                    file = variant
                    encoding = coding
                    break
                }
            }
        }

        let etag = file.etag
        // A plain file's fields for a 200 are made once per lookup (`StaticFile.plainResponse`);
        // otherwise here.
        let plain = hasVariant ? nil : file.plainResponse?.headers
        var headers = plain ?? StaticHandler.validators(lastModified: file.lastModified, etag: file.etag, hasVariant)

        // Preconditions in RFC 9110 13.2.2's order.
        if let ifMatch = asked.ifMatch {
            if !(StaticConditions.parseTagList(ifMatch).map { StaticConditions.strongMatch($0, etag: etag) } ?? false) {
                return .errorResponse(status: 412)
            }
        } else if let ius = asked.ifUnmodifiedSince, let date = StaticConditions.parseHTTPDate(ius),
                  file.mtime > date {
            return .errorResponse(status: 412)
        }
        if let ifNoneMatch = asked.ifNoneMatch {
            // Present: If-Modified-Since is ignored, even when this one is malformed.
            if let list = StaticConditions.parseTagList(ifNoneMatch), StaticConditions.noneMatchHits(list, etag: etag) {
                return HTTPResponse(status: 304, headers: StaticHandler.validators(lastModified: file.lastModified, etag: file.etag, hasVariant), body: .bytes([]))
            }
        } else if let ims = asked.ifModifiedSince, let date = StaticConditions.parseHTTPDate(ims),
                  file.mtime <= date {
            return HTTPResponse(status: 304, headers: StaticHandler.validators(lastModified: file.lastModified, etag: file.etag, hasVariant), body: .bytes([]))
        }

        if plain == nil {
            headers.add("Content-Type", contentType)
            if let encoding { headers.add("Content-Encoding", encoding) }
            headers.add("Accept-Ranges", "bytes")
        }

        // Range applies to GET only (RFC 9110 14.2); HEAD shows what a plain GET would get.
        var range: ClosedRange<Int>? = nil  // nil: the whole file
        var status = 200
        if request.method == "GET", let value = asked.range, StaticHandler.ifRangeHolds(asked.ifRange, etag: etag, mtime: file.mtime) {
            switch StaticRanges.parse(value, length: file.size) {
            case .full:
                break
            case .unsatisfiable:
                var r = HTTPResponse.errorResponse(status: 416)
                r.headers.set("Content-Range", "bytes */\(file.size)")
                return r
            case .ranges(let ranges) where ranges.count == 1:
                let r = ranges[0]
                range = r
                status = 206
                headers.add("Content-Range", "bytes \(r.lowerBound)-\(r.upperBound)/\(file.size)")
            case .ranges(let ranges):
                // RFC 9110 14.6: each part carries the type and its Content-Range.
                let boundary = StaticRanges.makeBoundary()
                let body = StaticRanges.multipartBody(ranges: ranges, length: file.size, contentType: contentType,
                                                      boundary: boundary) { file.append($0, to: &$1) }
                guard let body else { return .errorResponse(status: 500) }
                headers.set("Content-Type", "multipart/byteranges; boundary=" + boundary)
                return HTTPResponse(status: 206, headers: headers, body: .bytes(body))
            }
        }
        guard let body = StaticHandler.body(file, range) else { return .errorResponse(status: 500) }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// The fields of a 304, and the first ones of every 200: the validators (and Vary when a
    /// sibling exists).
    static func validators(lastModified: String, etag: String, _ hasVariant: Bool) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add("Last-Modified", lastModified)
        h.add("ETag", etag)
        if hasVariant { h.add("Vary", "Accept-Encoding") }
        return h
    }

    /// What `handle` needs of a request path, found in one pass over its bytes.
    struct PathShape {
        /// A NUL byte anywhere (400).
        var hasNUL = false
        /// For a path that is already normal (starts with "/", no empty segment, no segment that
        /// starts with ".", so no "." or ".." and no dotfile, no trailing "/"): the byte offset
        /// of its last "/"; nil for any other path, which takes the segment by segment way.
        var plainLastSlash: Int? = nil
    }

    static func scanPath(_ path: String) -> PathShape {
        if let shape = path.utf8.withContiguousStorageIfAvailable({ scanPath($0) }) { return shape }
        return Array(path.utf8).withUnsafeBufferPointer { scanPath($0) }
    }

    static func scanPath(_ u: UnsafeBufferPointer<UInt8>) -> PathShape {
        var shape = PathShape()
        var plain = u.count > 1 && u[0] == UInt8(ascii: "/")
        var previous: UInt8 = 0
        var last = 0
        for i in 0..<u.count {
            let b = u[i]
            if b == 0 { shape.hasNUL = true; return shape }
            if previous == UInt8(ascii: "/") && (b == UInt8(ascii: "/") || b == UInt8(ascii: ".")) { plain = false }
            if b == UInt8(ascii: "/") { last = i }
            previous = b
        }
        if plain && previous != UInt8(ascii: "/") { shape.plainLastSlash = last }
        return shape
    }

    /// The last component of a normal path (after its last "/").
    static func lastComponent(_ path: String) -> String {
        path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[path.utf8.index(after: $0)...]) } ?? path
    }

    /// The request fields the handler reads, each the first of its name (as `headers[name]`),
    /// found in one pass over the fields instead of one per name.
    struct AskedFields {
        var acceptEncoding: String? = nil
        var ifMatch: String? = nil
        var ifUnmodifiedSince: String? = nil
        var ifNoneMatch: String? = nil
        var ifModifiedSince: String? = nil
        var range: String? = nil
        var ifRange: String? = nil

        /// None of the seven fields was sent.
        var isEmpty: Bool {
            acceptEncoding == nil && ifMatch == nil && ifUnmodifiedSince == nil && ifNoneMatch == nil
                && ifModifiedSince == nil && range == nil && ifRange == nil
        }

        init(_ headers: HTTPHeaders) {
            for (name, value) in headers {
                // By length first: most fields (Host, User-Agent, Accept, Cookie) are none of these.
                switch name.utf8.count {
                case 5: if range == nil && HTTPHeaders.namesEqual(name, "Range") { range = value }
                case 8:
                    if ifMatch == nil && HTTPHeaders.namesEqual(name, "If-Match") { ifMatch = value }
                    else if ifRange == nil && HTTPHeaders.namesEqual(name, "If-Range") { ifRange = value }
                case 13: if ifNoneMatch == nil && HTTPHeaders.namesEqual(name, "If-None-Match") { ifNoneMatch = value }
                case 15: if acceptEncoding == nil && HTTPHeaders.namesEqual(name, "Accept-Encoding") { acceptEncoding = value }
                case 17: if ifModifiedSince == nil && HTTPHeaders.namesEqual(name, "If-Modified-Since") { ifModifiedSince = value }
                case 19: if ifUnmodifiedSince == nil && HTTPHeaders.namesEqual(name, "If-Unmodified-Since") { ifUnmodifiedSince = value }
                default: break
                }
            }
        }
    }

    /// The body for bytes `range` of `file` (nil: all of it): the bytes in memory (or a slice),
    /// or the cached fd, shared (the connection sends from it and lets go; an evicted entry's
    /// fd stays open until then).
    static func body(_ file: StaticFile, _ range: ClosedRange<Int>?) -> ResponseBody? {
        guard let range else { return StaticFile.wholeBody(file.content, size: file.size) }
        switch file.content {
        case .bytes(let b):
            return .bytes(Array(b[range]))
        case .descriptor(let f):
            // The cache's fd itself, held by reference: no dup and close per response.
            return .sharedFile(f, offset: range.lowerBound, count: range.count)
        }
    }

    /// If-Range: the range is served only if the validator still describes the file (a strong
    /// ETag, or exactly the Last-Modified date); otherwise the whole new file is sent.
    static func ifRangeHolds(_ ifRange: String?, etag: String, mtime: Int) -> Bool {
        guard let value = ifRange else { return true }
        let trimmed = Substring(value).trimmingSpacesAndTabs()
        if trimmed.hasPrefix("\"") || trimmed.hasPrefix("W/") {
            guard let list = StaticConditions.parseTagList(String(trimmed)), list.count == 1 else { return false }
            return StaticConditions.strongMatch(list, etag: etag) && list != [.any]
        }
        return StaticConditions.parseHTTPDate(String(trimmed)) == mtime
    }

    /// Looks `key` (a normal path below the root, "/" first) up as an uncached request would:
    /// open (no symlink as the last component), fstat, and for a regular file the check that the
    /// opened file lies inside the root. A file up to `StaticFileCache.inlineBytes` is read and
    /// closed; a larger one keeps its fd. The file carries the Content-Type of the key's last
    /// component (with `charset`), so a hit does not look it up.
    static func load(_ key: String, root: StaticRoot.Resolved, charset: String?) -> StaticLookup {
        let fd: Int32
        let confined: Bool
        do {
            (fd, confined) = try open(key, root: root)
        } catch {
            // Absent, a symlink (ELOOP from O_NOFOLLOW), not permitted: a stable answer, cached.
            // Out of fds or memory may pass: not cached.
            switch error.errno {
            case ENOENT, ENOTDIR, ELOOP, EACCES, ENAMETOOLONG: return .missing
            default: return .failed
            }
        }
        guard let st = try? Sys.fstat(fd) else { Sys.close(fd); return .failed }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            Sys.close(fd)
            return .directory
        case S_IFREG:
            break
        default:
            Sys.close(fd)
            return .missing
        }
        guard confined || isUnderRoot(fd: fd, base: root.path) else { Sys.close(fd); return .missing }
        let size = Int(st.st_size)
        let (mtime, inode) = (Int(st.st_mtim.tv_sec), UInt64(st.st_ino))
        let type = MIMETypes.contentType(forFileName: lastComponent(key), charset: charset)
        let open = StaticOpenFile(fd: fd)  // closes fd when released
        if size <= StaticFileCache.inlineBytes {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(size)
            // A short read (the file shrank since fstat): keep the fd, the connection's sendfile
            // notices, as it would without the cache.
            if size == 0 || StaticRanges.appendPread(fd, 0...(size - 1), to: &bytes) {
                return .file(StaticFile(size: size, mtime: mtime, inode: inode, content: .bytes(bytes), contentType: type))
            }
        }
        return .file(StaticFile(size: size, mtime: mtime, inode: inode, content: .descriptor(open), contentType: type))
    }

    /// Does openat2 work here? Cleared at the first ENOSYS (a kernel before 5.6, a seccomp filter
    /// that does not know it); then every lookup takes the /proc/self/fd check.
    static let beneathAvailable = Atomic<Bool>(true)

    /// Opens `key` (below `root.path`); `confined`: the kernel already kept the resolution
    /// inside the root (openat2 RESOLVE_BENEATH below the root's fd), so the /proc/self/fd check
    /// (a readlink, the dearest call of a lookup) is not needed.
    private static func open(_ key: String, root: StaticRoot.Resolved) throws(SysError) -> (fd: Int32, confined: Bool) {
        if let dir = root.directory, StaticHandler.beneathAvailable.load(ordering: .relaxed) {
            let relative = String(Substring(key.utf8.dropFirst()))
            do {
                let fd = try withExtendedLifetime(dir) { () throws(SysError) -> Int32 in
                    try Sys.openBeneath(dir.fd, relative.isEmpty ? "." : relative, StaticHandler.openFlags)
                }
                return (fd, true)
            } catch {
                switch error.errno {
                case ENOSYS: StaticHandler.beneathAvailable.store(false, ordering: .relaxed)
                // The resolution left the root lexically: an absolute symlink inside it may still
                // lead back under it, which the full-path check below allows (as before openat2).
                case EXDEV: break
                default: throw error
                }
            }
        }
        return (try Sys.open((root.path == "/" ? "" : root.path) + key, StaticHandler.openFlags), false)
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
    private static func isUnderRoot(fd: Int32, base: String) -> Bool {
        guard let path = Sys.readLink("/proc/self/fd/\(fd)") else { return false }
        if base == "/" { return path.hasPrefix("/") }
        return path == base || path.hasPrefix(base + "/")
    }

    /// Content-Type for a file name (see `MIMETypes.contentType(forFileName:)`).
    public static func contentType(forFileName name: String) -> String {
        MIMETypes.contentType(forFileName: name)
    }
}
