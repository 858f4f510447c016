import HerdSys

// The two parts of HerdHTTP that need the system layer live here, so HerdHTTP itself makes no
// system call and depends on no more of libc than HerdLibc's pure functions.

extension ResponseBody {
    /// Releases resources held by a body that will not be sent (closes the fd of `.file`,
    /// stops the producer of a `ProducedBodyStream`).
    public func discard() {
        switch self {
        case .file(let fd, _, _): if fd >= 0 { Sys.close(fd) }
        case .stream(let s): (s as? any ProducedBodyStream)?.abandon()
        case .bytes, .sharedFile: break // its holder closes the shared file
        }
    }
}

extension HTTPDate {
    /// The current time, formatted.
    package static func now() -> String {
        format(epochSeconds: wallClockSeconds())
    }
}
