import HerdHTTP
import HerdSys
import Synchronization

/// An open file descriptor shared by the cache and the requests using it: closed when the last
/// holder lets go (an entry evicted while a request still reads from it stays open until then,
/// so its number can never be reused under the request).
package final class StaticOpenFile: SharedFile {
    package let fd: Int32
    package init(fd: Int32) { self.fd = fd }
    deinit { Sys.close(fd) }
}

/// A regular file below the root, as one lookup found it: the validators and the content.
///
/// A class, all constant: the cache hands the same lookup to every request of its validity
/// period, and passing it on then costs one reference count, not one per field (a struct of
/// eight fields cost ~8 retains and releases per copy, several copies per request).
package final class StaticFile: Sendable {
    /// The whole file in memory (small files: a hit costs no system call), or its open fd.
    package enum Content: Sendable {
        case bytes([UInt8])
        case descriptor(StaticOpenFile)
    }
    package let size: Int
    package let mtime: Int
    package let inode: UInt64
    package let content: Content
    /// `ETag` and `Last-Modified`, formatted once per lookup rather than once per request.
    package let etag: String
    package let lastModified: String
    /// The Content-Type of the looked-up name (set by the handler's lookup; nil: not known).
    package let contentType: String?
    /// The whole plain 200 of this file: its fields (Last-Modified, ETag, Content-Type,
    /// Accept-Ranges, made with `contentType`, serialized once) and the whole file as its body.
    /// A request that asks nothing more (no condition, range or encoding) gets it as it is, for
    /// one reference count per part; others start from its fields.
    package let plainResponse: HTTPResponse?

    /// `contentType`: the type of the looked-up name; with it, `plainResponse` is made too.
    package init(size: Int, mtime: Int, inode: UInt64, content: Content, contentType: String? = nil) {
        self.size = size
        self.mtime = mtime
        self.inode = inode
        self.content = content
        let etag = StaticConditions.etag(size: size, mtime: mtime, inode: inode)
        let lastModified = HTTPDate.format(epochSeconds: mtime)
        self.etag = etag
        self.lastModified = lastModified
        self.contentType = contentType
        // The fields of a 200 without precompressed siblings, in the order `StaticHandler`
        // adds them to a response that has siblings. Serialized once here: a response that
        // sends them unchanged copies one block.
        plainResponse = contentType.map {
            var h = StaticHandler.validators(lastModified: lastModified, etag: etag, false)
            h.add("Content-Type", $0)
            h.add("Accept-Ranges", "bytes")
            h.prepareForResponses()
            return HTTPResponse(status: 200, headers: h, body: StaticFile.wholeBody(content, size: size))
        }
    }

    /// The whole file as a response body: the bytes, or the cache's fd itself, held by
    /// reference (no dup and close per response).
    static func wholeBody(_ content: Content, size: Int) -> ResponseBody {
        switch content {
        case .bytes(let b): return .bytes(b)
        case .descriptor(let f): return .sharedFile(f, offset: 0, count: size)
        }
    }

    /// Appends bytes `range` of the file to `out`; false if the file no longer has them.
    package func append(_ range: ClosedRange<Int>, to out: inout [UInt8]) -> Bool {
        switch content {
        case .bytes(let b):
            guard range.upperBound < b.count else { return false }
            out += b[range]
            return true
        case .descriptor(let f):
            return StaticRanges.appendPread(f.fd, range, to: &out)
        }
    }
}

/// What looking up one path below the root found.
package enum StaticLookup: Sendable {
    case file(StaticFile)
    /// A directory (the handler redirects or looks for its index.html).
    case directory
    /// Nothing to serve (absent, not a regular file, a symlink, outside the root): 404.
    case missing
    /// A transient failure (EMFILE, ENOMEM, EIO): 404 for this request, never cached.
    case failed
}

/// A per-worker open-file cache with nginx's `open_file_cache` / `open_file_cache_valid 1s`
/// semantics: lookups of a path are served from memory for `validityNanos` after they were made,
/// then made again. Pure policy: the lookup itself (open, fstat, the confinement check) is the
/// caller's `load` closure, so a cached entry is always exactly what an uncached request would
/// have found, at most one validity period ago.
///
/// Why reload instead of comparing a stat(path) with the entry: a stat follows the path as it is
/// now, not through the root-confinement check (a directory swapped for a symlink pointing
/// outside, to the same inode, would pass), and a full lookup once per second per hot path costs
/// nothing measurable. So a replaced (renamed-over) file, an in-place edit and a deletion are
/// all seen within the period, and a deleted file is never served past it.
///
/// Negative results (`.missing`, `.directory`) are cached too: a browser's request carries
/// Accept-Encoding, and the absent `.br`/`.gz` siblings would otherwise cost two failed opens
/// per request. `.failed` is not cached.
///
/// Bounds: entries, bytes held in memory and open descriptors; least recently used first out
/// (an evicted entry's fd is closed once no request holds it). Each lookup also drops up to two
/// least recently used entries that are past their validity (a reload would not use them), so
/// the fds of deleted files are released while traffic flows, as nginx's `inactive` does.
package struct StaticFileCache {
    package struct Limits: Sendable {
        package var entries: Int
        package var bytes: Int
        package var openFiles: Int
        package var validityNanos: UInt64
        /// 1024 entries, 8 MiB of small files, 128 fds of larger ones, 1 s (as StaticRoot).
        package static let standard = Limits(entries: 1024, bytes: 8 << 20, openFiles: 128,
                                             validityNanos: StaticRoot.validityNanos)
        /// `;cache=off`: every request looks the file up.
        package static let off = Limits(entries: 0, bytes: 0, openFiles: 0, validityNanos: 0)
    }

    /// Files up to this size are kept in memory (and sent with the head in one send, as the
    /// connection does for file bodies up to its inline limit, also 8 KiB). Larger ones go by
    /// sendfile from the entry's fd: a 16 KiB copy into user space and again into the socket
    /// cost more than the second system call (docs/static.md).
    package static let inlineBytes = 8 * 1024

    private struct Node {
        var key: String
        var value: StaticLookup
        var loadedAt: UInt64
        var newer = -1  // towards the most recently used
        var older = -1  // towards the least recently used
    }

    package let limits: Limits
    private var nodes: [Node] = []
    private var freeSlots: [Int] = []
    private var index: [String: Int] = [:]
    private var newest = -1
    private var oldest = -1
    package private(set) var count = 0
    package private(set) var bytes = 0
    package private(set) var openFiles = 0

    package init(limits: Limits) {
        self.limits = limits
    }

    /// The lookup of `key`: the cached one if made less than the validity period before `now`,
    /// else `load(key)` (remembered unless `.failed`).
    package mutating func lookup(_ key: String, now: UInt64, load: (String) -> StaticLookup) -> StaticLookup {
        dropExpiredOldest(now: now)
        if let i = index[key] {
            if now &- nodes[i].loadedAt < limits.validityNanos {
                touch(i)
                return nodes[i].value
            }
            remove(i)
        }
        let value = load(key)
        insert(key, value, now: now)
        return value
    }

    /// Forgets every entry (the root moved: its entries' keys will not be asked again).
    package mutating func removeAll() {
        nodes.removeAll()
        freeSlots.removeAll()
        index.removeAll()
        newest = -1
        oldest = -1
        count = 0
        bytes = 0
        openFiles = 0
    }

    /// What an entry holds against the bounds: (bytes in memory, open fds).
    private static func cost(_ value: StaticLookup) -> (bytes: Int, files: Int) {
        guard case .file(let f) = value else { return (0, 0) }
        switch f.content {
        case .bytes(let b): return (b.count, 0)
        case .descriptor: return (0, 1)
        }
    }

    private mutating func insert(_ key: String, _ value: StaticLookup, now: UInt64) {
        if case .failed = value { return }
        let cost = Self.cost(value)
        guard limits.entries > 0, cost.bytes <= limits.bytes, cost.files <= limits.openFiles else { return }
        // Make room, least recently used first, for the bound that is exceeded.
        while count + 1 > limits.entries { remove(oldest) }
        while bytes + cost.bytes > limits.bytes, let victim = oldestHolding(bytes: true) { remove(victim) }
        while openFiles + cost.files > limits.openFiles, let victim = oldestHolding(bytes: false) { remove(victim) }
        let node = Node(key: key, value: value, loadedAt: now)
        let i: Int
        if let slot = freeSlots.popLast() {
            nodes[slot] = node
            i = slot
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        index[key] = i
        linkNewest(i)
        count += 1
        bytes += cost.bytes
        openFiles += cost.files
    }

    /// The least recently used entry holding memory (`bytes`) or an fd (`!bytes`).
    private func oldestHolding(bytes: Bool) -> Int? {
        var i = oldest
        while i >= 0 {
            let c = Self.cost(nodes[i].value)
            if bytes ? c.bytes > 0 : c.files > 0 { return i }
            i = nodes[i].newer
        }
        return nil
    }

    private mutating func dropExpiredOldest(now: UInt64) {
        for _ in 0..<2 {
            guard oldest >= 0, now &- nodes[oldest].loadedAt >= limits.validityNanos else { return }
            remove(oldest)
        }
    }

    private mutating func remove(_ i: Int) {
        let cost = Self.cost(nodes[i].value)
        unlink(i)
        index[nodes[i].key] = nil
        // Releasing the value closes its fd unless a request still holds it.
        nodes[i].value = .missing
        nodes[i].key = ""
        freeSlots.append(i)
        count -= 1
        bytes -= cost.bytes
        openFiles -= cost.files
    }

    private mutating func touch(_ i: Int) {
        guard newest != i else { return }
        unlink(i)
        linkNewest(i)
    }

    private mutating func linkNewest(_ i: Int) {
        nodes[i].older = newest
        nodes[i].newer = -1
        if newest >= 0 { nodes[newest].newer = i }
        newest = i
        if oldest < 0 { oldest = i }
    }

    private mutating func unlink(_ i: Int) {
        let (newer, older) = (nodes[i].newer, nodes[i].older)
        if newer >= 0 { nodes[newer].older = older } else { newest = older }
        if older >= 0 { nodes[older].newer = newer } else { oldest = newer }
        nodes[i].newer = -1
        nodes[i].older = -1
    }
}

/// The cache of one handler in one worker, with the root its entries were made under. The
/// handler runs on the worker's event loop; the lock is for Sendable and costs an uncontended
/// atomic.
final class StaticFileCacheBox: Sendable {
    private struct State {
        var cache: StaticFileCache
        var root: String
    }
    private let state: Mutex<State>

    init(limits: StaticFileCache.Limits) {
        state = Mutex(State(cache: StaticFileCache(limits: limits), root: ""))
    }

    /// `cache.lookup` for a path below `root`; entries of a former root are dropped first, so a
    /// flipped release's fds are closed at once.
    /// `now`: `monotonicNanos()`, read once by the handler for the root and the cache.
    func lookup(_ path: String, root: String, now: UInt64, load: (String) -> StaticLookup) -> StaticLookup {
        state.withLock { s in
            if s.root != root {
                s.cache.removeAll()
                s.root = root
            }
            return s.cache.lookup(path, now: now, load: load)
        }
    }
}
