import CHerdSys
import Glibc

/// Process titles, as nginx sets them: `herdd: master`, `herdd: worker 3`.
///
/// Two places show a process's name, and each needs its own trick:
/// - `comm` (/proc/PID/comm, `ps -e`, `top`, and systemd's "Killing process 662 (...)"):
///   prctl(PR_SET_NAME), at most 15 bytes. Workers are spawned from /proc/self/exe, so their
///   comm would otherwise read "exe".
/// - the command line (/proc/PID/cmdline, `ps aux`): the kernel shows the memory where argv's
///   strings were placed at exec, so we overwrite it in place. The environment strings that
///   follow argv in the same block are moved to the heap first (nginx's ngx_init_setproctitle)
///   so the title may use their room too.
/// CommandLine.arguments is read (and cached by Swift) in Entry.main before this runs, so the
/// upgrade's re-exec still gets the original arguments; glibc's program names, which point into
/// argv[0], are moved to a copy (syslog's identifier stays the program's name).
@usableFromInline package enum ProcessTitle {
    package static func set(_ title: String, comm: String? = nil) {
        // Cosmetic, and PR_SET_NAME cannot fail for a valid name pointer: nothing to report.
        do { try Sys.setThreadName(comm ?? title) } catch {}
        overwriteArguments(with: title)
    }

    /// `NAME: worker N` shortened to fit comm's 15 bytes (NAME: the program's, herdd by default).
    @usableFromInline package static func workerComm(slot: Int) -> String {
        let name = ProgramName.current
        for candidate in ["\(name): worker \(slot)", "\(name): worker\(slot)", "\(name): w\(slot)"] where candidate.utf8.count <= 15 {
            return candidate
        }
        return String(decoding: Array(name.utf8.prefix(10)), as: UTF8.self) + ":w\(slot)"
    }

    private static func overwriteArguments(with title: String) {
        let argc = Int(CommandLine.argc)
        let argv = CommandLine.unsafeArgv
        guard argc > 0, let first = argv[0] else { return }
        // The contiguous block of argv strings, then of the environment strings right after it.
        var end = first + strlen(first) + 1
        for i in 1..<max(1, argc) {
            guard let a = argv[i], a == end else { break }
            end = a + strlen(a) + 1
        }
        var e = environ
        while let s = e.pointee {
            if s == end, let copy = strdup(s) {
                end = s + strlen(s) + 1
                e.pointee = copy
            }
            e += 1
        }
        let room = end - first
        guard room > 1 else { return }
        keepProgramNames(argv0: first)
        let bytes = Array(title.utf8.prefix(room - 1))
        memset(first, 0, room)
        bytes.withUnsafeBufferPointer { p in
            if let b = p.baseAddress { memcpy(first, b, bytes.count) }
        }
        // Later readers of argv see one argument: the title.
        for i in 1..<max(1, argc) { argv[i] = nil }
    }

    /// glibc's `program_invocation_name` and `program_invocation_short_name` point into argv[0]
    /// (the short one past its last "/"); syslog(3) names its messages after the short one, and
    /// so does every library that logs through it (libdispatch's "Failed to set thread
    /// priority"). Once the title overwrites argv[0] they would read a piece of the title:
    /// "/usr/bin/herdd" under "herdd: master" leaves "ster". Point them at a copy first.
    private static func keepProgramNames(argv0: UnsafeMutablePointer<CChar>) {
        guard herd_program_name() == UnsafePointer(argv0), let copy = strdup(argv0) else { return }
        let short = strrchr(copy, Int32(UInt8(ascii: "/"))).map { $0 + 1 } ?? copy
        herd_set_program_names(copy, short)
    }
}
