import CHerdSys
import Glibc

extension Sys {
    /// memfd_create(MFD_CLOEXEC): an anonymous file in memory (the scoreboard), shared with
    /// children through posix_spawn's dup2 and readable by others through /proc/PID/fd.
    @usableFromInline package static func memfd(_ name: String) throws(SysError) -> Int32 {
        try sys("memfd_create", detail: name) { memfd_create(name, MFD_CLOEXEC) }
    }

    @usableFromInline package static func truncate(_ fd: Int32, size: Int, what: @autoclosure () -> String? = nil) throws(SysError) {
        try sys("ftruncate", detail: what()) { ftruncate(fd, off_t(size)) }
    }

    /// mmap(MAP_SHARED) of `size` bytes of `fd`, read-only or read-write.
    @usableFromInline package static func mapShared(_ fd: Int32, size: Int, readOnly: Bool, what: @autoclosure () -> String? = nil) throws(SysError) -> UnsafeMutableRawPointer {
        guard let p = mmap(nil, size, readOnly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
            throw SysError("mmap", detail: what())
        }
        return p
    }

    /// munmap(2); fails only for arguments that are not a mapping of ours (EINVAL).
    @usableFromInline package static func unmap(_ p: UnsafeMutableRawPointer, size: Int) throws(SysError) {
        try sys("munmap") { munmap(p, size) }
    }
}

/// Words of a shared mapping (the scoreboard) read and written across processes: acquire loads
/// and release stores (C11 atomics in the shim: Swift's `Atomic` cannot live at an address in
/// shared memory). No system call; inlined to one instruction each.
@inlinable @inline(__always)
package func sharedLoad(_ p: UnsafePointer<UInt64>) -> UInt64 { herd_load64(p) }

@inlinable @inline(__always)
package func sharedStore(_ p: UnsafeMutablePointer<UInt64>, _ value: UInt64) { herd_store64(p, value) }
