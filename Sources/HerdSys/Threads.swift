import Glibc

// Threads of herdd besides the event loop: the worker's watcher (blocking handlers) and the
// test-only idle thread; a pthread mutex and the identity of a thread.

/// A pthread mutex on the heap. Not Synchronization's `Mutex`: ThreadSanitizer intercepts
/// pthread, so a `--sanitize=thread` build sees the ordering it gives instead of reporting the
/// futex-based lock of the (uninstrumented) standard library as a race. Lock and unlock of a
/// valid, unlocked-by-us mutex cannot fail, so they report nothing.
package final class ThreadMutex: @unchecked Sendable {
    @usableFromInline let raw: UnsafeMutablePointer<pthread_mutex_t>

    package init(what: @autoclosure () -> String? = nil) throws(SysError) {
        raw = .allocate(capacity: 1)
        let rc = pthread_mutex_init(raw, nil)
        guard rc == 0 else {
            raw.deallocate()
            throw SysError("pthread_mutex_init", errno: rc, detail: what())
        }
    }

    /// A mutex with default attributes, for types whose initializer cannot throw: glibc's
    /// pthread_mutex_init only fills in memory for default attributes and always returns 0
    /// (the errors POSIX allows concern attributes and resources it does not use).
    package init() {
        raw = .allocate(capacity: 1)
        let rc = pthread_mutex_init(raw, nil)
        assert(rc == 0, "pthread_mutex_init: \(rc)")
    }

    deinit {
        pthread_mutex_destroy(raw)
        raw.deallocate()
    }

    @inlinable @inline(__always) package func lock() { pthread_mutex_lock(raw) }
    @inlinable @inline(__always) package func unlock() { pthread_mutex_unlock(raw) }
}

/// Which thread this is (pthread_self), to tell the event loop's thread from others.
@usableFromInline package struct ThreadIdentity: Sendable {
    @usableFromInline let raw: pthread_t

    @inlinable @inline(__always)
    package static var current: ThreadIdentity { ThreadIdentity(raw: pthread_self()) }

    @inlinable @inline(__always)
    init(raw: pthread_t) { self.raw = raw }

    @inlinable @inline(__always)
    package var isCurrent: Bool { pthread_equal(pthread_self(), raw) != 0 }
}

extension Sys {
    /// Starts a detached thread that runs `body` (a thread of the process's life: nobody joins
    /// it). `stackSize`: bytes, nil for the default (8 MiB); a small stack for a thread that
    /// only runs a loop of its own.
    package static func startThread(stackSize: Int? = nil, what: String,
                                     _ body: @escaping @Sendable () -> Void) throws(SysError) {
        var attr = pthread_attr_t()
        var rc = pthread_attr_init(&attr)
        try sysRC("pthread_attr_init", detail: what, rc)
        defer { pthread_attr_destroy(&attr) }
        if let stackSize {
            rc = pthread_attr_setstacksize(&attr, stackSize)
            try sysRC("pthread_attr_setstacksize", detail: what, rc)
        }
        rc = pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        try sysRC("pthread_attr_setdetachstate", detail: what, rc)
        // The closure travels as a retained box; the thread owns it from here.
        let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
        var thread = pthread_t()
        rc = pthread_create(&thread, &attr, { raw in
            guard let raw else { return nil }
            Unmanaged<ThreadBody>.fromOpaque(raw).takeRetainedValue().body()
            return nil
        }, context)
        if rc != 0 { Unmanaged<ThreadBody>.fromOpaque(context).release() }
        try sysRC("pthread_create", detail: what, rc)
    }
}

private final class ThreadBody {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
