import Synchronization
import HerdSys

/// The debug handler's streamed request bodies (docs/async.md, "Streamed request bodies"), for
/// tests and demos:
/// - `/upload-count[?delay=<ms>&read=<bytes>]`: the body streams in (`streamsBody`); the
///   handler reads it chunk by chunk, waiting `delay` ms after each (a slow reader: back-pressure),
///   and stops after `read` bytes if given. Answers JSON: `bytes`, `chunks`, `started_at` (when
///   the handler started), `first_chunk_at`, `last_chunk_at` (wall clock, epoch seconds), the
///   first 100 chunk `sizes`; 413/408/400 come from the worker, not from here.
/// - `/upload-stats`: "running=<n> cancelled=<n> failed=<n>" for this process's `/upload-count`
///   handlers: running now, ended by a cancellation, ended by a `RequestBodyError`.
enum DebugUploads {
    static let running = Atomic<Int>(0)
    static let cancelled = Atomic<Int>(0)
    static let failed = Atomic<Int>(0)

    /// Whether `path` is one whose body streams in.
    static func streams(_ path: String) -> Bool { path == "/upload-count" }

    static func stats() -> HTTPResponse {
        .text(200, "running=\(running.load(ordering: .relaxed)) cancelled=\(cancelled.load(ordering: .relaxed)) failed=\(failed.load(ordering: .relaxed))\n")
    }

    static func count(_ request: HTTPRequest, body: RequestBodyStream?) async throws -> HTTPResponse {
        running.add(1, ordering: .relaxed)
        defer { running.subtract(1, ordering: .relaxed) }
        let query = DebugUploads.query(request.query)
        let delay = min(query["delay"] ?? 0, DebugHandler.maxSleepMs)
        let readLimit = query["read"] ?? Int.max
        let body = body ?? RequestBodyStream(request.body)
        let started = now()
        var bytes = 0, chunks = 0
        var first = 0.0, last = 0.0
        var sizes: [Int] = []
        do {
            while bytes < readLimit, let chunk = try await body.next() {
                last = now()
                if chunks == 0 { first = last }
                chunks += 1
                bytes += chunk.count
                if sizes.count < 100 { sizes.append(chunk.count) }
                if delay > 0 { try await Task.sleep(for: .milliseconds(delay)) }
            }
        } catch is CancellationError {
            cancelled.add(1, ordering: .relaxed)
            throw CancellationError()
        } catch let error as RequestBodyError {
            failed.add(1, ordering: .relaxed)
            throw error
        }
        let json = "{\"bytes\":\(bytes),\"chunks\":\(chunks),\"started_at\":\(started),\"first_chunk_at\":\(first),\"last_chunk_at\":\(last),\"sizes\":\(sizes)}\n"
        return .text(200, json, contentType: "application/json")
    }

    private static func now() -> Double { Double(realtimeMicros()) / 1e6 }

    /// `a=1&b=2` -> ["a": 1, "b": 2] (integer values only).
    private static func query(_ q: String?) -> [String: Int] {
        var out: [String: Int] = [:]
        for pair in (q ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Int(kv[1]), v >= 0 { out[String(kv[0])] = v }
        }
        return out
    }
}
