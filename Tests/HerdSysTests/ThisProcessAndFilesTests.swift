import Glibc
import HerdSys
import Synchronization
import Testing

/// The calls moved into the layer from the server's modules: environment, process ids, signal
/// dispositions, files and directories, threads. Each failure is a SysError naming the call.
@Suite struct ThisProcessAndFilesTests {
    /// A fresh directory under /tmp, removed by the caller (`rm` of its files, then rmdir).
    func tempDir() throws -> String {
        var template = Array("/tmp/herdsys-test-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else { throw SysError("mkdtemp") }
        return String(cString: p)
    }

    func write(_ path: String, _ text: String) throws {
        let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
        defer { Sys.close(fd) }
        Array(text.utf8).withUnsafeBytes { Sys.writeAll(fd, $0) }
    }

    @Test func environment() throws {
        let name = "HERDSYS_TEST_\(getpid())"
        #expect(Sys.environment(name) == nil)
        setenv(name, "a=b", 1)
        #expect(Sys.environment(name) == "a=b")
        #expect(Sys.environmentEntries().contains("\(name)=a=b"))
        try Sys.unsetEnvironment(name)
        #expect(Sys.environment(name) == nil)
        #expect(!Sys.environmentEntries().contains { $0.hasPrefix("\(name)=") })
        let e = #expect(throws: SysError.self) { try Sys.unsetEnvironment("A=B") }  // '=' in a name
        #expect(e?.call == "unsetenv" && e?.errno == EINVAL)
    }

    @Test func processIDs() {
        #expect(Sys.processID() == getpid())
        #expect(Sys.parentProcessID() == getppid())
        #expect((Sys.onlineProcessorCount() ?? 0) >= 1)
    }

    @Test func ignoredSignalIsDiscarded() throws {
        try Sys.ignoreSignal(SIGWINCH)
        #expect(kill(getpid(), SIGWINCH) == 0)  // would be ignored by default too; checks the call
        try Sys.defaultSignal(SIGWINCH)
        let e = #expect(throws: SysError.self) { try Sys.ignoreSignal(SIGKILL) }
        #expect(e?.call == "signal" && e?.errno == EINVAL)
    }

    @Test func filesAndDirectories() throws {
        let dir = try tempDir()
        defer {
            for n in ["a", "b"] { unlink("\(dir)/\(n)") }
            rmdir(dir)
        }
        try write("\(dir)/a", "0123456789")
        try write("\(dir)/b", "")
        #expect(Set(try Sys.directoryEntries(dir)) == [".", "..", "a", "b"])
        let st = try Sys.pathStat(dir)
        #expect(st.st_mode & S_IFMT == S_IFDIR)
        #expect(try Sys.pathStat("\(dir)/a").st_size == 10)
        let real = try Sys.realPath(dir)
        let base = dir.split(separator: "/").last.map(String.init) ?? ""
        #expect(try Sys.realPath("\(dir)/./a") == "\(real)/a")
        #expect(try Sys.realPath("\(dir)/../\(base)/a") == "\(real)/a")
        #expect(try Sys.readFile("\(dir)/a", limit: 10) == Array("0123456789".utf8))
        let big = #expect(throws: SysError.self) { try Sys.readFile("\(dir)/a", limit: 9) }
        #expect(big?.errno == EFBIG)

        let missing = "\(dir)/missing"
        let attempts: [(String, () throws -> Void)] = [
            ("stat", { _ = try Sys.pathStat(missing) }), ("realpath", { _ = try Sys.realPath(missing) }),
            ("opendir", { _ = try Sys.directoryEntries(missing) }), ("open", { _ = try Sys.readFile(missing, limit: 1) }),
        ]
        for (call, attempt) in attempts {
            let e = #expect(throws: SysError.self) { try attempt() }
            #expect(e?.call == call && e?.errno == ENOENT, "\(call)")
        }
    }

    @Test func threadAndMutex() throws {
        let mutex = try ThreadMutex(what: "test")
        let loop = ThreadIdentity.current
        #expect(loop.isCurrent)
        let seen = Mutex<(ran: Bool, onLoop: Bool)?>(nil)
        try Sys.startThread(stackSize: 256 * 1024, what: "test") {
            mutex.lock()
            let onLoop = loop.isCurrent
            mutex.unlock()
            seen.withLock { $0 = (true, onLoop) }
        }
        let deadline = monotonicNanos() + 10_000_000_000
        while seen.withLock({ $0 }) == nil && monotonicNanos() < deadline { Sys.sleep(micros: 1_000) }
        let result = seen.withLock { $0 }
        #expect(result?.ran == true)
        #expect(result?.onLoop == false)
    }
}
