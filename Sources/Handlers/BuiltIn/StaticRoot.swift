import HerdSys
import Synchronization

/// The canonical path of the static root, re-resolved when older than `validity`.
///
/// Why: the usual atomic deploy flips a symlink (`ln -sfn release-2 current.tmp && mv -T
/// current.tmp current`). Resolving once at start served the old release until SIGHUP and 404
/// once it was deleted. realpath on every request would cost several lstat/readlink calls, so,
/// as nginx's `open_file_cache_valid`, the result is kept for a short period (1 s): a flip is
/// followed within it.
final class StaticRoot: Sendable {
    /// How long a resolution is trusted.
    static let validityNanos: UInt64 = 1_000_000_000

    let configured: String
    private struct Cached { var path: String?; var resolvedAt: UInt64 }
    private let cached: Mutex<Cached>

    init(_ configured: String) {
        self.configured = configured
        cached = Mutex(Cached(path: StaticRoot.realPath(configured), resolvedAt: monotonicNanos()))
    }

    /// realpath(root) as of at most `validityNanos` ago; nil if it does not resolve.
    var current: String? {
        let now = monotonicNanos()
        return cached.withLock { c in
            if now &- c.resolvedAt >= StaticRoot.validityNanos {
                c = Cached(path: StaticRoot.realPath(configured), resolvedAt: now)
            }
            return c.path
        }
    }

    static func realPath(_ p: String) -> String? {
        try? Sys.realPath(p)
    }
}
