import Glibc

// HerdLibc: the pure part of libc, the only part code outside the system layer may use
// (docs/design-system-layer.md). No module outside Sources/HerdSys, Sources/HerdLibc and the C
// shim imports Glibc, so anything else of libc - every call that reaches the kernel or
// libsystemd - does not compile there; it goes through HerdSys, with its SysError and EINTR
// policy. This file is the allowlist: Tests/syscall-check.sh fails if it declares a name its
// ALLOWED list does not hold, or if another module imports Glibc (or Foundation, which
// re-exports it). Everything here is a memory or string function that makes no system call and
// keeps no state, a constant, or a C type that the layer's API hands out; all forward to Glibc
// with `@inlinable @inline(__always)`, so they cost what the C functions cost.

// MARK: Memory and string functions (no system call, no global state)

@inlinable @inline(__always)
package func memchr(_ s: UnsafeRawPointer!, _ c: Int32, _ n: Int) -> UnsafeMutableRawPointer! {
    Glibc.memchr(s, c, n)
}

@inlinable @inline(__always)
package func memcmp(_ a: UnsafeRawPointer!, _ b: UnsafeRawPointer!, _ n: Int) -> Int32 {
    Glibc.memcmp(a, b, n)
}

@inlinable @inline(__always)
package func memcpy(_ dst: UnsafeMutableRawPointer!, _ src: UnsafeRawPointer!, _ n: Int) -> UnsafeMutableRawPointer! {
    Glibc.memcpy(dst, src, n)
}

@inlinable @inline(__always)
package func memmove(_ dst: UnsafeMutableRawPointer!, _ src: UnsafeRawPointer!, _ n: Int) -> UnsafeMutableRawPointer! {
    Glibc.memmove(dst, src, n)
}

@inlinable @inline(__always)
package func memset(_ s: UnsafeMutableRawPointer!, _ c: Int32, _ n: Int) -> UnsafeMutableRawPointer! {
    Glibc.memset(s, c, n)
}

@inlinable @inline(__always)
package func strlen(_ s: UnsafePointer<CChar>!) -> Int {
    Glibc.strlen(s)
}

/// The text of an errno value ("No such file or directory").
@inlinable @inline(__always)
package func strerror(_ errnum: Int32) -> UnsafeMutablePointer<CChar>! {
    Glibc.strerror(errnum)
}

/// The name of a signal ("Terminated").
@inlinable @inline(__always)
package func strsignal(_ sig: Int32) -> UnsafeMutablePointer<CChar>! {
    Glibc.strsignal(sig)
}

/// An address in text form (formatting only; no resolver, no system call).
@inlinable @inline(__always)
package func inet_ntop(_ af: Int32, _ src: UnsafeRawPointer!, _ dst: UnsafeMutablePointer<CChar>!, _ size: Glibc.socklen_t) -> UnsafePointer<CChar>! {
    Glibc.inet_ntop(af, src, dst, size)
}

/// A numeric address parsed from text (parsing only; no resolver, no system call).
@inlinable @inline(__always)
package func inet_pton(_ af: Int32, _ src: UnsafePointer<CChar>!, _ dst: UnsafeMutableRawPointer!) -> Int32 {
    Glibc.inet_pton(af, src, dst)
}

/// Calendar time in UTC to seconds since the epoch (arithmetic; unlike mktime, no time zone file).
@inlinable @inline(__always)
package func timegm(_ t: UnsafeMutablePointer<Glibc.tm>!) -> Int {
    Glibc.timegm(t)
}

// MARK: errno values (compared with SysError.errno)

@inlinable package var EAGAIN: Int32 { Glibc.EAGAIN }
@inlinable package var EWOULDBLOCK: Int32 { Glibc.EWOULDBLOCK }
@inlinable package var EINTR: Int32 { Glibc.EINTR }
@inlinable package var ECONNABORTED: Int32 { Glibc.ECONNABORTED }
@inlinable package var ECONNREFUSED: Int32 { Glibc.ECONNREFUSED }
@inlinable package var ECONNRESET: Int32 { Glibc.ECONNRESET }
@inlinable package var EEXIST: Int32 { Glibc.EEXIST }
@inlinable package var EFBIG: Int32 { Glibc.EFBIG }
@inlinable package var EINVAL: Int32 { Glibc.EINVAL }
@inlinable package var ENOENT: Int32 { Glibc.ENOENT }
@inlinable package var EPROTO: Int32 { Glibc.EPROTO }
@inlinable package var ESRCH: Int32 { Glibc.ESRCH }
@inlinable package var EPIPE: Int32 { Glibc.EPIPE }
@inlinable package var EBADF: Int32 { Glibc.EBADF }
@inlinable package var EMFILE: Int32 { Glibc.EMFILE }
@inlinable package var ENFILE: Int32 { Glibc.ENFILE }
@inlinable package var ENOBUFS: Int32 { Glibc.ENOBUFS }
@inlinable package var ENOMEM: Int32 { Glibc.ENOMEM }
@inlinable package var EPERM: Int32 { Glibc.EPERM }
@inlinable package var ENOTDIR: Int32 { Glibc.ENOTDIR }
@inlinable package var EACCES: Int32 { Glibc.EACCES }
@inlinable package var ELOOP: Int32 { Glibc.ELOOP }
@inlinable package var ENAMETOOLONG: Int32 { Glibc.ENAMETOOLONG }
@inlinable package var ENOSYS: Int32 { Glibc.ENOSYS }
@inlinable package var EXDEV: Int32 { Glibc.EXDEV }
@inlinable package var EISDIR: Int32 { Glibc.EISDIR }

// MARK: Signal numbers (the signal contract; sending and handling them is HerdSys's)

@inlinable package var SIGCHLD: Int32 { Glibc.SIGCHLD }
@inlinable package var SIGHUP: Int32 { Glibc.SIGHUP }
@inlinable package var SIGINT: Int32 { Glibc.SIGINT }
@inlinable package var SIGKILL: Int32 { Glibc.SIGKILL }
@inlinable package var SIGPIPE: Int32 { Glibc.SIGPIPE }
@inlinable package var SIGQUIT: Int32 { Glibc.SIGQUIT }
@inlinable package var SIGTERM: Int32 { Glibc.SIGTERM }
@inlinable package var SIGTTIN: Int32 { Glibc.SIGTTIN }
@inlinable package var SIGTTOU: Int32 { Glibc.SIGTTOU }
@inlinable package var SIGUSR1: Int32 { Glibc.SIGUSR1 }
@inlinable package var SIGUSR2: Int32 { Glibc.SIGUSR2 }
@inlinable package var SIGSTOP: Int32 { Glibc.SIGSTOP }
@inlinable package var SIGCONT: Int32 { Glibc.SIGCONT }
@inlinable package var SIGALRM: Int32 { Glibc.SIGALRM }
@inlinable package var SIGABRT: Int32 { Glibc.SIGABRT }

// MARK: Address families, socket options, open(2) flags: arguments of the layer's calls

@inlinable package var AF_INET: Int32 { Glibc.AF_INET }
@inlinable package var AF_INET6: Int32 { Glibc.AF_INET6 }
@inlinable package var AF_UNIX: Int32 { Glibc.AF_UNIX }
@inlinable package var AF_UNSPEC: Int32 { Glibc.AF_UNSPEC }
@inlinable package var SOL_SOCKET: Int32 { Glibc.SOL_SOCKET }
@inlinable package var SO_REUSEADDR: Int32 { Glibc.SO_REUSEADDR }
@inlinable package var IPV6_V6ONLY: Int32 { Glibc.IPV6_V6ONLY }
@inlinable package var TCP_NODELAY: Int32 { Glibc.TCP_NODELAY }
@inlinable package var TCP_CORK: Int32 { Glibc.TCP_CORK }
@inlinable package var TCP_NOTSENT_LOWAT: Int32 { Glibc.TCP_NOTSENT_LOWAT }
@inlinable package var TCP_DEFER_ACCEPT: Int32 { Glibc.TCP_DEFER_ACCEPT }
@inlinable package var O_CLOEXEC: Int32 { Glibc.O_CLOEXEC }
@inlinable package var O_CREAT: Int32 { Glibc.O_CREAT }
@inlinable package var O_NOFOLLOW: Int32 { Glibc.O_NOFOLLOW }
@inlinable package var O_NONBLOCK: Int32 { Glibc.O_NONBLOCK }
@inlinable package var O_RDONLY: Int32 { Glibc.O_RDONLY }
@inlinable package var O_RDWR: Int32 { Glibc.O_RDWR }
@inlinable package var O_TRUNC: Int32 { Glibc.O_TRUNC }
@inlinable package var O_WRONLY: Int32 { Glibc.O_WRONLY }
@inlinable package var STDIN_FILENO: Int32 { Glibc.STDIN_FILENO }
@inlinable package var STDOUT_FILENO: Int32 { Glibc.STDOUT_FILENO }
@inlinable package var STDERR_FILENO: Int32 { Glibc.STDERR_FILENO }
@inlinable package var INET_ADDRSTRLEN: Int32 { Glibc.INET_ADDRSTRLEN }
@inlinable package var INET6_ADDRSTRLEN: Int32 { Glibc.INET6_ADDRSTRLEN }
@inlinable package var IPPROTO_IPV6: Int { Glibc.IPPROTO_IPV6 }
@inlinable package var IPPROTO_TCP: Int { Glibc.IPPROTO_TCP }
@inlinable package var MSG_DONTWAIT: Int { Glibc.MSG_DONTWAIT }
@inlinable package var MSG_MORE: Int { Glibc.MSG_MORE }
@inlinable package var MSG_NOSIGNAL: Int { Glibc.MSG_NOSIGNAL }
@inlinable package var SHUT_RD: Int { Glibc.SHUT_RD }
@inlinable package var SHUT_WR: Int { Glibc.SHUT_WR }
@inlinable package var SHUT_RDWR: Int { Glibc.SHUT_RDWR }

// MARK: File types in stat's st_mode

@inlinable package var S_IFMT: UInt32 { Glibc.S_IFMT }
@inlinable package var S_IFDIR: UInt32 { Glibc.S_IFDIR }
@inlinable package var S_IFREG: UInt32 { Glibc.S_IFREG }
@inlinable package var S_IFSOCK: UInt32 { Glibc.S_IFSOCK }
@inlinable package var S_IFLNK: UInt32 { Glibc.S_IFLNK }

// MARK: C types the layer's API takes or returns (plain values)

package typealias pid_t = Glibc.pid_t
package typealias mode_t = Glibc.mode_t
package typealias off_t = Glibc.off_t
package typealias socklen_t = Glibc.socklen_t
package typealias sa_family_t = Glibc.sa_family_t
package typealias sockaddr = Glibc.sockaddr
package typealias sockaddr_in = Glibc.sockaddr_in
package typealias sockaddr_in6 = Glibc.sockaddr_in6
package typealias sockaddr_un = Glibc.sockaddr_un
package typealias sockaddr_storage = Glibc.sockaddr_storage
package typealias in_addr = Glibc.in_addr
package typealias in6_addr = Glibc.in6_addr
package typealias iovec = Glibc.iovec
package typealias timespec = Glibc.timespec
package typealias tm = Glibc.tm
package typealias stat = Glibc.stat
