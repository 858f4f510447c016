import Glibc
import Testing
@testable import Handlers

/// The open-file cache's policy (StaticFileCache): validity, reload, negative entries, bounds,
/// eviction closing fds. Time is passed in; lookups are a counting fake.
@Suite struct StaticFileCachePolicy {
    static let second: UInt64 = 1_000_000_000
    static let limits = StaticFileCache.Limits(entries: 4, bytes: 100, openFiles: 2, validityNanos: second)

    /// A pipe whose write end is handed to the cache as a file's fd: the read end sees end of
    /// file exactly when that fd is closed (robust against the number being reused meanwhile by
    /// a test running in parallel, unlike a check of the number).
    final class Probe {
        let readEnd: Int32
        let writeEnd: Int32
        var handedOver = false  // the write end belongs to a StaticOpenFile now
        init() {
            var fds: [Int32] = [-1, -1]
            precondition(pipe(&fds) == 0 && fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0)
            (readEnd, writeEnd) = (fds[0], fds[1])
        }
        var closed: Bool {
            var b: UInt8 = 0
            return read(readEnd, &b, 1) == 0
        }
        deinit {
            close(readEnd)
            if !handedOver { close(writeEnd) }
        }
    }

    static func inMemory(_ text: String, inode: UInt64 = 1) -> StaticLookup {
        let b = Array(text.utf8)
        return .file(StaticFile(size: b.count, mtime: 1_700_000_000, inode: inode, content: .bytes(b)))
    }

    static func onDisk(_ probe: Probe, inode: UInt64 = 7) -> StaticLookup {
        precondition(!probe.handedOver, "one StaticOpenFile per fd")
        probe.handedOver = true
        return .file(StaticFile(size: 1 << 20, mtime: 1_700_000_000, inode: inode,
                         content: .descriptor(StaticOpenFile(fd: probe.writeEnd))))
    }

    static func inode(_ l: StaticLookup) -> UInt64? {
        if case .file(let f) = l { return f.inode }
        return nil
    }

    @Test func hitWithinTheValidityThenReloaded() {
        var cache = StaticFileCache(limits: Self.limits)
        var loads = 0
        let load = { (_: String) -> StaticLookup in loads += 1; return Self.inMemory("v\(loads)") }
        _ = cache.lookup("/r/a", now: 0, load: load)
        let hit = cache.lookup("/r/a", now: Self.second - 1, load: load)
        #expect(loads == 1)
        guard case .file(let f) = hit, case .bytes(let b) = f.content else { Issue.record("no file"); return }
        #expect(b == Array("v1".utf8) && f.etag.hasPrefix("\"") && f.lastModified.hasSuffix(" GMT"))
        // At the validity period: looked up again, the new result served.
        guard case .file(let g) = cache.lookup("/r/a", now: Self.second, load: load),
              case .bytes(let c) = g.content else { Issue.record("no file"); return }
        #expect(loads == 2 && c == Array("v2".utf8))
        #expect(cache.count == 1)
    }

    @Test func replacedFileIsServedAndTheOldFdClosed() {
        var cache = StaticFileCache(limits: Self.limits)
        let old = Probe(), new = Probe()
        _ = cache.lookup("/r/big", now: 0, load: { _ in Self.onDisk(old, inode: 7) })
        #expect(Self.inode(cache.lookup("/r/big", now: 10, load: { _ in Self.onDisk(new, inode: 8) })) == 7)
        #expect(!old.closed)
        // Renamed over (a new inode): after the period the new file, and the old fd is closed.
        #expect(Self.inode(cache.lookup("/r/big", now: Self.second + 10, load: { _ in Self.onDisk(new, inode: 8) })) == 8)
        #expect(old.closed && !new.closed)
        #expect(cache.openFiles == 1)
    }

    @Test func deletedFileIsNeverServedPastThePeriod() {
        var cache = StaticFileCache(limits: Self.limits)
        let p = Probe()
        _ = cache.lookup("/r/big", now: 0, load: { _ in Self.onDisk(p) })
        guard case .missing = cache.lookup("/r/big", now: Self.second, load: { _ in .missing }) else {
            Issue.record("a deleted file served past the validity"); return
        }
        #expect(p.closed && cache.openFiles == 0)
        // The 404 is cached for the period too (created again: seen after it).
        guard case .missing = cache.lookup("/r/big", now: Self.second + 5, load: { _ in Self.inMemory("back") }) else {
            Issue.record("negative entry not cached"); return
        }
        #expect(Self.inode(cache.lookup("/r/big", now: 2 * Self.second, load: { _ in Self.inMemory("back") })) == 1)
    }

    @Test func expiredEntryReloadedAlsoWhenNotAmongTheOldest() {
        var cache = StaticFileCache(limits: Self.limits)
        for k in ["a", "b", "c"] { _ = cache.lookup(k, now: 0, load: { _ in Self.inMemory(k, inode: 1) }) }
        // At the period a and b (the two oldest) are dropped in passing; c must be reloaded.
        #expect(Self.inode(cache.lookup("c", now: Self.second, load: { _ in Self.inMemory("c2", inode: 2) })) == 2)
        #expect(cache.count == 1)
    }

    @Test func transientFailuresAreNotCached() {
        var cache = StaticFileCache(limits: Self.limits)
        var loads = 0
        for t in 0..<3 {
            _ = cache.lookup("/r/x", now: UInt64(t), load: { _ in loads += 1; return .failed })
        }
        #expect(loads == 3 && cache.count == 0)
    }

    @Test func entryBoundEvictsTheLeastRecentlyUsed() {
        var cache = StaticFileCache(limits: Self.limits)
        var loaded: [String] = []
        let load = { (k: String) -> StaticLookup in loaded.append(k); return .directory }
        for k in ["a", "b", "c", "d"] { _ = cache.lookup(k, now: 1, load: load) }
        _ = cache.lookup("a", now: 2, load: load)  // a used again: b is now the oldest
        _ = cache.lookup("e", now: 3, load: load)
        #expect(cache.count == 4)
        _ = cache.lookup("a", now: 4, load: load)
        _ = cache.lookup("b", now: 5, load: load)
        #expect(loaded == ["a", "b", "c", "d", "e", "b"])
    }

    @Test func fdBoundClosesTheEvictedFdsOnly() {
        var cache = StaticFileCache(limits: Self.limits)
        let probes = [Probe(), Probe(), Probe()]
        _ = cache.lookup("small", now: 0, load: { _ in Self.inMemory("s") })  // oldest, but holds no fd
        for (i, p) in probes.enumerated() {
            _ = cache.lookup("big\(i)", now: UInt64(i + 1), load: { _ in Self.onDisk(p) })
        }
        #expect(cache.openFiles == 2 && cache.count == 3)
        #expect(probes[0].closed && !probes[1].closed && !probes[2].closed)
        var reloaded = false
        _ = cache.lookup("small", now: 9, load: { _ in reloaded = true; return .missing })
        #expect(!reloaded)  // the small file stayed
    }

    @Test func byteBound() {
        var cache = StaticFileCache(limits: Self.limits)
        let sixty = String(repeating: "x", count: 60)
        _ = cache.lookup("a", now: 0, load: { _ in Self.inMemory(sixty) })
        _ = cache.lookup("n", now: 0, load: { _ in .missing })
        _ = cache.lookup("b", now: 1, load: { _ in Self.inMemory(sixty) })
        #expect(cache.bytes == 60 && cache.count == 2)  // a went, the negative entry stayed
        // More than the whole bound: served, not kept.
        let big = String(repeating: "y", count: 101)
        #expect(Self.inode(cache.lookup("c", now: 2, load: { _ in Self.inMemory(big) })) == 1)
        #expect(cache.bytes == 60 && cache.count == 2)
    }

    @Test func anFdInUseOutlivesItsEviction() {
        var cache = StaticFileCache(limits: Self.limits)
        let p = Probe()
        do {
            let held = cache.lookup("big", now: 0, load: { _ in Self.onDisk(p) })  // a request's reference
            cache.removeAll()
            #expect(!p.closed)
            withExtendedLifetime(held) {}
        }
        #expect(p.closed)  // the last holder let go
    }

    @Test func expiredEntriesAreDroppedByLaterLookups() {
        var cache = StaticFileCache(limits: Self.limits)
        let p = Probe()
        _ = cache.lookup("big", now: 0, load: { _ in Self.onDisk(p) })
        _ = cache.lookup("other", now: 2 * Self.second, load: { _ in .missing })
        #expect(p.closed && cache.count == 1)
    }

    @Test func offNeverKeeps() {
        var cache = StaticFileCache(limits: .off)
        var loads = 0
        for _ in 0..<3 { _ = cache.lookup("a", now: 0, load: { _ in loads += 1; return .directory }) }
        #expect(loads == 3 && cache.count == 0)
    }
}

/// The handler with its cache on a real directory: a change is seen within the validity period,
/// at once with `cache=off`, and a large file goes out as an fd of its own per response.
@Suite struct StaticHandlerCache {
    func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    func replace(_ dir: TempDir, _ name: String, _ content: String) {
        dir.write(name + ".new", content)
        precondition(rename(dir.path + "/" + name + ".new", dir.path + "/" + name) == 0)
    }

    @Test func replacedFileSeenWithinThePeriod() throws {
        let dir = TempDir()
        dir.write("v.txt", "one")
        let h = StaticHandler(root: dir.path)
        #expect(fileContents(get(h, "/v.txt")) == "one")
        replace(dir, "v.txt", "two")
        let changed = now()
        #expect(fileContents(get(h, "/v.txt")) == "one")  // still the cached lookup
        var seen = ""
        while now() < changed + 3 * StaticRoot.validityNanos {
            seen = fileContents(get(h, "/v.txt")) ?? ""
            if seen == "two" { break }
            usleep(10_000)
        }
        #expect(seen == "two" && now() - changed < StaticRoot.validityNanos + 200_000_000)
    }

    /// A worker gives the handler its recent clock reading (`HandlerContext.recentNanos`): the
    /// validity period is measured with it, not with a clock read per request.
    @Test func theValidityPeriodRunsOnTheContextsClock() throws {
        let dir = TempDir()
        dir.write("v.txt", "one")
        let h = StaticHandler(root: dir.path)
        var context = ctx
        let start = now()
        func read(at t: UInt64) -> String? {
            context.recentNanos = t
            return fileContents(h.handle(HTTPRequest(method: "GET", target: "/v.txt", headers: ["Host": "h"]), context: context))
        }
        #expect(read(at: start) == "one")
        replace(dir, "v.txt", "two")
        // Half a period later by the context's clock: the cached lookup.
        #expect(read(at: start + StaticRoot.validityNanos / 2) == "one")
        // A period and a bit later by the context's clock (though not by the real one): looked up again.
        #expect(read(at: start + StaticRoot.validityNanos + 100_000_000) == "two")
    }

    /// A request that asks nothing beyond the file gets the lookup's prepared 200
    /// (`StaticFile.plainResponse`): byte for byte what the full path makes, for GET and HEAD,
    /// small (in memory) and large (the cached fd) files.
    @Test func thePlainResponseIsWhatTheFullPathMakes() throws {
        let dir = TempDir()
        dir.write("a.txt", "small file\n")
        dir.write("big.bin", String(repeating: "0123456789abcdef", count: 2048))
        let h = StaticHandler(root: dir.path)
        func wire(_ r: HTTPResponse, head: Bool) -> [UInt8] {
            var out: [UInt8] = []
            _ = HTTPResponseHead.serialize(r, requestIsHEAD: head, keepAlive: true, versionMinor: 1,
                                           date: "Thu, 03 Dec 2026 18:00:00 GMT", into: &out)
            return out
        }
        for path in ["/a.txt", "/big.bin"] {
            for method in ["GET", "HEAD"] {
                let plain = get(h, path, method: method)
                // If-Range without Range is ignored (RFC 9110 13.1.5): the full path, same answer.
                let full = get(h, path, method: method, headers: ["Host": "h", "If-Range": "\"x\""])
                #expect(plain.status == 200 && full.status == 200)
                #expect(wire(plain, head: method == "HEAD") == wire(full, head: method == "HEAD"), "\(method) \(path)")
                #expect(fileContents(plain) == fileContents(full))
                #expect(plain.headers["Content-Type"] != nil && plain.headers["ETag"] == full.headers["ETag"])
            }
        }
        // Anything asked takes the full path: a condition, a range, an encoding.
        let etag = get(h, "/a.txt").headers["ETag"] ?? ""
        #expect(get(h, "/a.txt", headers: ["Host": "h", "If-None-Match": etag]).status == 304)
        #expect(get(h, "/a.txt", headers: ["Host": "h", "If-Match": "\"other\""]).status == 412)
        #expect(get(h, "/a.txt", headers: ["Host": "h", "Range": "bytes=0-4"]).status == 206)
        dir.write("a.txt.gz", "gz")
        #expect(get(h, "/a.txt", headers: ["Host": "h", "Accept-Encoding": "gzip"]).headers["Content-Encoding"] == "gzip")
    }

    @Test func cacheOffSeesAChangeAtOnce() throws {
        let dir = TempDir()
        dir.write("v.txt", "one")
        let h = try HandlerRegistry.make("static:\(dir.path);cache=off")
        #expect(fileContents(get(h, "/v.txt")) == "one")
        replace(dir, "v.txt", "two")
        #expect(fileContents(get(h, "/v.txt")) == "two")
        #expect(unlink(dir.path + "/v.txt") == 0)
        #expect(get(h, "/v.txt").status == 404)
    }

    @Test func largeFileSharesTheCachedFd() {
        let dir = TempDir()
        let big = String(repeating: "0123456789abcdef", count: 2048)  // 32 KiB: kept as an fd
        dir.write("big.bin", big)
        let h = StaticHandler(root: dir.path)
        let a = get(h, "/big.bin"), b = get(h, "/big.bin")
        guard case .sharedFile(let fa, 0, 32768) = a.body, case .sharedFile(let fb, 0, 32768) = b.body else {
            Issue.record("not sent from the cached fd"); return
        }
        // The cache's fd itself for both: no dup (and close) per response.
        #expect(fa === fb)
        #expect(fileContents(a) == big)
        #expect(fileContents(b) == big)
        // (An evicted entry's fd outlives its eviction while a response holds it:
        // anFdInUseOutlivesItsEviction.)
        let part = get(h, "/big.bin", headers: ["Range": "bytes=16-31"])
        #expect(part.status == 206 && fileContents(part) == "0123456789abcdef")
    }
}

/// The root confinement with openat2 (RESOLVE_BENEATH below the root's fd) and without it (the
/// /proc/self/fd check, as after ENOSYS): the same answers. Symlinked directories that stay under
/// the root are served, by a relative or an absolute target; leaving it is 404.
@Suite struct StaticConfinement {
    @Test(arguments: [true, false]) func sameAnswersWithAndWithoutOpenat2(_ beneath: Bool) {
        let dir = TempDir()
        dir.mkdir("real")
        dir.write("real/f.txt", "inside")
        dir.write("secret.txt", "outside", base: dir.outside)
        dir.symlink("real", "rel")                     // relative, stays inside
        dir.symlink(dir.path + "/real", "abs")         // absolute, leads back inside
        dir.symlink(dir.outside, "abs-out")            // absolute, outside
        let outsideName = String(dir.outside.split(separator: "/").last ?? "")
        dir.symlink("../" + outsideName, "rel-out")    // relative, outside
        let saved = StaticHandler.beneathAvailable.load(ordering: .relaxed)
        StaticHandler.beneathAvailable.store(beneath, ordering: .relaxed)
        defer { StaticHandler.beneathAvailable.store(saved, ordering: .relaxed) }
        let h = try? HandlerRegistry.make("static:\(dir.path);cache=off")
        guard let h else { Issue.record("no handler"); return }
        #expect(fileContents(get(h, "/real/f.txt")) == "inside")
        #expect(fileContents(get(h, "/rel/f.txt")) == "inside")
        #expect(fileContents(get(h, "/abs/f.txt")) == "inside")
        #expect(get(h, "/abs-out/secret.txt").status == 404)
        #expect(get(h, "/rel-out/secret.txt").status == 404)
        #expect(get(h, "/rel").status == 404)  // a symlink as the last component (O_NOFOLLOW)
        #expect(get(h, "/real").status == 301)
    }
}
