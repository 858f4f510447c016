import CHerdSys
import Glibc

extension Sys {
    /// close(2), never retried and never reported: on Linux the descriptor is released even
    /// when close reports EINTR or EIO, so a retry could close a number reused meanwhile (see
    /// the EINTR policy in SysError.swift), and herdd closes only sockets, pipes, read-only files
    /// and the scoreboard (a shared mapping, written through memory, not through the fd).
    @inlinable @inline(__always)
    package static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// open(2); `mode` for O_CREAT. `what` defaults to the path.
    @usableFromInline package static func open(_ path: String, _ flags: Int32, mode: mode_t = 0) throws(SysError) -> Int32 {
        try sys("open", detail: path) { Glibc.open(path, flags, mode) }
    }

    /// openat2(2) of `relative` below the directory `dirfd`, refusing any resolution that leaves
    /// it (RESOLVE_BENEATH: `..`, an absolute path or symlink, a symlink pointing outside ->
    /// EXDEV; RESOLVE_NO_MAGICLINKS). ENOSYS on kernels before 5.6 or under a seccomp filter
    /// that does not know the call.
    @usableFromInline package static func openBeneath(_ dirfd: Int32, _ relative: String, _ flags: Int32) throws(SysError) -> Int32 {
        try sys("openat2", detail: relative) { herd_openat2_beneath(dirfd, relative, flags) }
    }

    /// open(2) of a directory (O_RDONLY | O_DIRECTORY | O_CLOEXEC), as the base of `openBeneath`.
    @usableFromInline package static func openDirectory(_ path: String) throws(SysError) -> Int32 {
        try sys("open", detail: path) { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
    }

    @usableFromInline package static func fstat(_ fd: Int32, what: @autoclosure () -> String? = nil) throws(SysError) -> stat {
        var st = stat()
        try sys("fstat", detail: what()) { Glibc.fstat(fd, &st) }
        return st
    }

    /// lstat(2): the path itself, not what a symlink points to.
    @usableFromInline package static func lstat(_ path: String) throws(SysError) -> stat {
        var st = stat()
        try sys("lstat", detail: path) { Glibc.lstat(path, &st) }
        return st
    }

    /// readlink(2) as text (/proc/self/exe, /proc/PID/fd/N), nil on error.
    @usableFromInline package static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = Glibc.readlink(path, &buf, buf.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @usableFromInline package static func unlink(_ path: String) throws(SysError) {
        try sys("unlink", detail: path) { Glibc.unlink(path) }
    }

    @usableFromInline package static func rename(_ from: String, _ to: String) throws(SysError) {
        try sys("rename", detail: "\(from) -> \(to)") { Glibc.rename(from, to) }
    }

    // MARK: fcntl

    /// Moves `fd` to the lowest free number >= `minimum` (F_DUPFD_CLOEXEC) and closes the
    /// original, also when the dup fails. herdd keeps its own fds above the range posix_spawn's
    /// dup2 targets use, so no dup2 overwrites a source not yet copied.
    @usableFromInline package static func moveAbove(_ fd: Int32, _ minimum: Int32, what: @autoclosure () -> String? = nil) throws(SysError) -> Int32 {
        defer { close(fd) }
        return try sys("fcntl", detail: "F_DUPFD_CLOEXEC \(what() ?? "fd \(fd)")") { fcntl(fd, F_DUPFD_CLOEXEC, minimum) }
    }

    /// A second descriptor for the same open file (F_DUPFD_CLOEXEC): its own number to close,
    /// sharing the file (the static handler hands one to a connection while its cache keeps the
    /// original; sendfile and pread take explicit offsets, so the shared file offset is unused).
    @usableFromInline package static func duplicate(_ fd: Int32) throws(SysError) -> Int32 {
        try sys("fcntl", detail: "F_DUPFD_CLOEXEC fd \(fd)") { fcntl(fd, F_DUPFD_CLOEXEC, 0) }
    }

    /// Sets FD_CLOEXEC (an fd inherited through posix_spawn's dup2 has it cleared).
    @usableFromInline package static func setCloseOnExec(_ fd: Int32) throws(SysError) {
        try sys("fcntl", detail: "F_SETFD FD_CLOEXEC fd \(fd)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    /// Sets O_NONBLOCK (a file status flag: shared by every process holding the same file).
    @usableFromInline package static func setNonBlocking(_ fd: Int32) throws(SysError) {
        let flags = try sys("fcntl", detail: "F_GETFL") { fcntl(fd, F_GETFL) }
        if flags & O_NONBLOCK == 0 {
            try sys("fcntl", detail: "F_SETFL") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        }
    }

    /// pipe2(O_CLOEXEC): (read end, write end).
    @usableFromInline package static func pipe(what: @autoclosure () -> String? = nil) throws(SysError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        try sys("pipe2", detail: what()) { pipe2(&fds, O_CLOEXEC) }
        return (fds[0], fds[1])
    }

    // MARK: read and write

    /// read(2) into `buffer` (`.done(0)`: end of file).
    @inlinable @inline(__always)
    package static func read(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> IOResult {
        sysIO { Glibc.read(fd, buffer, count) }
    }

    /// pread(2) at `offset` into `buffer` (`.done(0)`: end of file); the fd's offset is untouched.
    @inlinable @inline(__always)
    package static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, at offset: Int) -> IOResult {
        sysIO { Glibc.pread(fd, buffer, count, off_t(offset)) }
    }

    /// Reads a blocking fd until end of file or until `out` holds at least `limit` bytes.
    /// Returns true at end of file, false when it stopped at the limit.
    @usableFromInline package static func readToEnd(_ fd: Int32, into out: inout [UInt8], limit: Int) throws(SysError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            switch chunk.withUnsafeMutableBytes({ read(fd, $0.baseAddress, $0.count) }) {
            case .done(0): return true
            case .done(let n): out += chunk[0..<n]
            case .wouldBlock: throw SysError("read", errno: EAGAIN)
            case .failed(let e): throw SysError("read", errno: e)
            }
        }
        return false
    }

    /// Writes the whole buffer to a blocking fd (stderr logging, a CLI request); stops
    /// silently on an error (there is nowhere to report a failing stderr).
    @usableFromInline package static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        var off = 0
        while off < bytes.count {
            guard case .done(let n) = sysIO({ Glibc.write(fd, base + off, bytes.count - off) }) else { return }
            off += n
        }
    }
}

extension Sys {
    /// stat(2) of a path (symbolic links followed).
    @usableFromInline package static func pathStat(_ path: String) throws(SysError) -> Glibc.stat {
        var st = Glibc.stat()
        try sys("stat", detail: path) { statPath(path, &st) }
        return st
    }

    /// realpath(3): the absolute path with every symbolic link, `.` and `..` resolved.
    @usableFromInline package static func realPath(_ path: String) throws(SysError) -> String {
        guard let r = realpath(path, nil) else { throw SysError("realpath", detail: path) }
        defer { free(r) }
        return String(cString: r)
    }

    /// The names in a directory (opendir/readdir), "." and ".." included, in the directory's order.
    @usableFromInline package static func directoryEntries(_ path: String) throws(SysError) -> [String] {
        guard let d = opendir(path) else { throw SysError("opendir", detail: path) }
        defer { closedir(d) }
        var names: [String] = []
        while true {
            // readdir returns nil at the end and on an error; only errno tells them apart.
            Glibc.errno = 0
            guard let entry = readdir(d) else {
                let e = Glibc.errno
                if e != 0 { throw SysError("readdir", errno: e, detail: path) }
                return names
            }
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            })
        }
    }

    /// A whole file (open, read to its end). Throws EFBIG past `limit` bytes.
    @usableFromInline package static func readFile(_ path: String, limit: Int) throws(SysError) -> [UInt8] {
        let fd = try open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        var bytes: [UInt8] = []
        guard try readToEnd(fd, into: &bytes, limit: limit + 1) else { throw SysError("read", errno: EFBIG, detail: path) }
        return bytes
    }
}

/// stat(2) by its C name: inside `extension Sys`, `stat` is the struct (or a method).
private func statPath(_ path: String, _ st: inout Glibc.stat) -> Int32 { stat(path, &st) }
