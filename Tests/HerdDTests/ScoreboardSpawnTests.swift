import Foundation
import CHerdSys
import Glibc
import Testing
@testable import HerdD
import HerdSys

/// The shared-memory scoreboard on a real memfd: the master's and a worker's mappings of the same
/// fd, the slot words, the latency buckets, the published command results and the header check.
@Suite struct ScoreboardTests {
    @Test func publishedMasterPIDIsReadFromTheFileAndFollowsTheRename() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("herdd-sb-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = "\(dir)/\(Scoreboard.fileName)"
        #expect(Scoreboard.masterPID(publishedAt: path) == nil)
        let old = try Scoreboard(creatingSlots: 1, masterPID: 4242, publishDirectory: dir)
        #expect(Scoreboard.masterPID(publishedAt: path) == 4242)
        // A hot upgrade's new master: its file replaces the old one only at publishFile().
        let new = try Scoreboard(creatingSlots: 1, masterPID: 4343, publishDirectory: dir, publishNow: false)
        #expect(Scoreboard.masterPID(publishedAt: path) == 4242)
        try new.publishFile()
        #expect(Scoreboard.masterPID(publishedAt: path) == 4343)
        // The old master after a hand-over leaves the file alone (Master.run): unpublish would
        // only remove a file that still names it.
        old.unpublish(masterPID: 4242)
        #expect(Scoreboard.masterPID(publishedAt: path) == 4343)
        // Not a scoreboard: nil.
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 64))
        #expect(Scoreboard.masterPID(publishedAt: path) == nil)
    }

    @Test func workerMappingSeesMasterWritesAndBack() throws {
        let master = try Scoreboard(creatingSlots: 3, masterPID: 4242)
        defer { close(master.fd) }
        let worker = try Scoreboard(attaching: master.fd)
        #expect(worker.slotCount == 3)
        #expect(worker.header(.masterPID) == 4242)
        master.reset(1, generation: 7)
        #expect(worker.load(1, .generation) == 7)
        #expect(worker.state(1) == .starting)
        #expect(worker.load(1, .heartbeat) > 0)
        worker.bump(1, .requests)
        worker.bump(1, .requests, by: 4)
        worker.store(1, .pid, 99)
        let s = master.snapshot(1)
        #expect(s.requests == 5 && s.pid == 99 && s.generation == 7)
        // Slots do not overlap: slot 0 and 2 are untouched.
        #expect(master.snapshot(0).requests == 0 && master.snapshot(2).requests == 0)
        // reset zeroes every word of the slot, listener counters included.
        worker.bump(1, listener: 2, .accepted)
        #expect(master.listenerCounters(1, listener: 2)[ListenerIndex.accepted] == 1)
        master.reset(1, generation: 8)
        #expect(master.snapshot(1).requests == 0)
        #expect(master.listenerCounters(1, listener: 2)[ListenerIndex.accepted] == 0)
    }

    @Test func latencyBucketsIncludeTheirUpperBound() throws {
        let sb = try Scoreboard(creatingSlots: 1, masterPID: 1)
        defer { close(sb.fd) }
        sb.observeLatency(0, listener: 0, micros: 500)   // bound of bucket 0 (<= 500 µs)
        sb.observeLatency(0, listener: 0, micros: 501)   // bucket 1
        sb.observeLatency(0, listener: 0, micros: 10_000_000)  // above every bound: +Inf only
        let c = sb.listenerCounters(0, listener: 0)
        #expect(c.count == Scoreboard.listenerCounterCount)
        #expect(c[ListenerIndex.latencySum] == 500 + 501 + 10_000_000)
        #expect(c[ListenerIndex.latencyCount] == 3)
        let buckets = Array(c[ListenerIndex.bucket0...])
        #expect(buckets[0] == 1 && buckets[1] == 1)
        #expect(buckets.reduce(0, +) == 2)
    }

    @Test func publishedResultsAndMessage() throws {
        let sb = try Scoreboard(creatingSlots: 1, masterPID: 1)
        defer { close(sb.fd) }
        let reader = try Scoreboard(attaching: sb.fd, readOnly: true)
        sb.publish(reload: .failed, message: "bad config")
        #expect(reader.header(.reloadSeq) == 1)
        #expect(reader.header(.reloadResult) == Scoreboard.Outcome.failed.rawValue)
        #expect(reader.message == "bad config")
        sb.publish(upgrade: .ok, newPID: 77, message: "upgraded")
        #expect(reader.header(.upgradeSeq) == 1 && reader.header(.upgradeNewPID) == 77)
        #expect(reader.message == "upgraded")
        // The message area is 384 bytes with its NUL: longer text is cut, never overflows.
        sb.setMessage(String(repeating: "m", count: 1000))
        #expect(reader.message.utf8.count == (Scoreboard.headerWords - Scoreboard.messageWord) * 8 - 1)
        #expect(reader.header(.reloadSeq) == 1)  // the header words after the message are intact
    }

    @Test func damagedHeaderIsDetected() throws {
        let sb = try Scoreboard(creatingSlots: 1, masterPID: 1)
        defer { close(sb.fd) }
        #expect(sb.isIntact)
        var zero: UInt64 = 0
        #expect(pwrite(sb.fd, &zero, 8, 0) == 8)  // the magic word, through the fd
        #expect(!sb.isIntact)
        #expect(throws: SysError.self) { try Scoreboard(attaching: sb.fd) }
        var magic = Scoreboard.magic
        #expect(pwrite(sb.fd, &magic, 8, 0) == 8)
        #expect(sb.isIntact)
    }

    @Test func notAScoreboard() throws {
        let fd = memfd_create("not-a-scoreboard", 0)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(throws: SysError.self) { try Scoreboard(attaching: fd) }  // empty: too small
        #expect(ftruncate(fd, 8192) == 0)
        #expect(throws: SysError.self) { try Scoreboard(attaching: fd) }  // no magic
    }
}

/// Indices into `listenerCounters` (ListenerField order).
enum ListenerIndex {
    static let accepted = Scoreboard.ListenerField.accepted.rawValue
    static let latencySum = Scoreboard.ListenerField.latencySumMicros.rawValue
    static let latencyCount = Scoreboard.ListenerField.latencyCount.rawValue
    static let bucket0 = Scoreboard.ListenerField.bucket0.rawValue
}

/// posix_spawn as the master uses it, on /bin/sh: fds handed over by number, nothing else
/// inherited, the signal mask and dispositions a child starts with, and the environment filter.
@Suite struct SpawnTests {
    /// Runs `script` under /bin/sh with the write end of a pipe as fd 5; returns what it wrote
    /// there and its exit status.
    func run(_ script: String, env: [String] = []) throws -> (String, Int32) {
        var p: [Int32] = [-1, -1]
        #expect(pipe(&p) == 0)
        _ = fcntl(p[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(p[1], F_SETFD, FD_CLOEXEC)
        defer { close(p[0]) }
        let pid: pid_t
        do {
            pid = try Spawn.start(path: "/bin/sh", argv: ["sh", "-c", script], env: env, fds: [(p[1], 5)])
        } catch { close(p[1]); throw error }
        close(p[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(p[0], &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        return (String(decoding: out, as: UTF8.self), (status >> 8) & 0xff)
    }

    @Test func handsOverOnlyTheListedFDs() throws {
        var q: [Int32] = [-1, -1]
        #expect(pipe(&q) == 0)
        _ = fcntl(q[0], F_SETFD, FD_CLOEXEC)
        defer { close(q[0]); close(q[1]) }
        // fd 5 is the dup2'ed pipe (FD_CLOEXEC cleared on the copy); q[0] is CLOEXEC: gone.
        let (out, status) = try run("echo five >&5; if [ -e /proc/$$/fd/\(q[0]) ]; then echo leaked >&5; else echo closed >&5; fi")
        #expect(status == 0)
        #expect(out == "five\nclosed\n")
    }

    @Test func childStartsWithHandledSignalsBlockedAndDefaultDispositions() throws {
        // The test process may ignore or block anything; the child must not inherit either.
        let (out, _) = try run("exec grep -E '^(SigBlk|SigIgn):' /proc/self/status >&5")
        var fields: [String: UInt64] = [:]
        for line in out.split(separator: "\n") {
            let kv = line.split(separator: ":", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = UInt64(String(kv[1].filter { $0 != " " && $0 != "\t" }), radix: 16) }
        }
        var expected: UInt64 = 0
        for sig in Spawn.masterOnlySignals + Spawn.stopSignals { expected |= 1 << UInt64(sig - 1) }
        #expect(fields["SigBlk"] == expected, "\(out)")
        // Standard signals (1-31) back to their default action (the reserved real-time ones
        // glibc uses internally are not ours to reset).
        #expect(fields["SigIgn"].map { $0 & 0x7fff_ffff } == 0, "\(out)")
    }

    @Test func passesTheEnvironmentGiven() throws {
        let (out, _) = try run("echo \"[$HERDD_SPAWN_A][$HERDD_SPAWN_B]\" >&5", env: ["HERDD_SPAWN_A=1"])
        #expect(out == "[1][]\n")
    }

    @Test func environmentRemovesNamedVariables() {
        setenv("HERDD_SPAWN_TEST_VAR", "x=y", 1)
        defer { unsetenv("HERDD_SPAWN_TEST_VAR") }
        #expect(Spawn.environment(removing: []).contains("HERDD_SPAWN_TEST_VAR=x=y"))
        let without = Spawn.environment(removing: ["HERDD_SPAWN_TEST_VAR"])
        #expect(!without.contains { $0.hasPrefix("HERDD_SPAWN_TEST_VAR=") })
        #expect(without.count == Spawn.environment(removing: []).count - 1)
    }

    @Test func missingExecutableIsAnError() {
        #expect(throws: SysError.self) {
            _ = try Spawn.start(path: "/nonexistent/herdd", argv: ["x"], env: [], fds: [])
        }
    }
}
