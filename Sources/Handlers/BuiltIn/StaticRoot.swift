import HerdSys
import Synchronization

/// The canonical path of the static root, and an open fd of that directory, re-resolved when
/// older than `validity`.
///
/// Why: the usual atomic deploy flips a symlink (`ln -sfn release-2 current.tmp && mv -T
/// current.tmp current`). Resolving once at start served the old release until SIGHUP and 404
/// once it was deleted. realpath on every request would cost several lstat/readlink calls, so,
/// as nginx's `open_file_cache_valid`, the result is kept for a short period (1 s): a flip is
/// followed within it. The directory fd is what lookups open files below with openat2
/// (`StaticHandler.load`), so the kernel keeps them inside the root.
final class StaticRoot: Sendable {
    /// How long a resolution is trusted.
    static let validityNanos: UInt64 = 1_000_000_000

    /// The root as resolved: realpath, and the directory opened (nil if it could not be: then
    /// lookups open full paths and check them through /proc/self/fd).
    struct Resolved: Sendable {
        let path: String
        let directory: StaticOpenFile?
    }

    let configured: String
    private struct Cached { var resolved: Resolved?; var resolvedAt: UInt64 }
    private let cached: Mutex<Cached>

    init(_ configured: String) {
        self.configured = configured
        cached = Mutex(Cached(resolved: StaticRoot.resolve(configured), resolvedAt: monotonicNanos()))
    }

    /// The root as of at most `validityNanos` before `now` (`monotonicNanos()`); nil if it does
    /// not resolve.
    func current(now: UInt64) -> Resolved? {
        cached.withLock { c in
            if now &- c.resolvedAt >= StaticRoot.validityNanos {
                c = Cached(resolved: StaticRoot.resolve(configured), resolvedAt: now)
            }
            return c.resolved
        }
    }

    static func resolve(_ p: String) -> Resolved? {
        guard let path = try? Sys.realPath(p) else { return nil }
        // Opened by the canonical path, not `p`: the fd and the path name the same directory.
        let directory = (try? Sys.openDirectory(path)).map { StaticOpenFile(fd: $0) }
        return Resolved(path: path, directory: directory)
    }
}
