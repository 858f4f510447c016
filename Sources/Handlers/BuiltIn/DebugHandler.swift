import Synchronization
import HerdSys

/// Test and demo endpoints. Only served where an operator maps `debug` explicitly.
///
/// - `/sleep/<ms>`: blocks the worker for `ms` milliseconds (capped at 60000), then "slept <ms>\n".
/// - `/async-sleep/<ms>`: an async request: awaits `Task.sleep` for `ms` milliseconds (capped at
///   60000) without blocking the worker, then "slept <ms>\n"; cancelled (client gone, deadline,
///   drain) it ends at once and its answer is dropped or replaced (docs/async.md).
/// - `/async-error`: an async request whose handler throws (herdd answers 500 and logs it).
/// - `/work/<us>`: burns CPU (a busy loop) for `us` microseconds of this thread's CPU time
///   (capped at 60 s), then "worked <us>\n": a CPU-bound handler for benchmarks.
/// - `/spin/<us>`: the same CPU work as `/work/<us>`, but a route that does not block (no
///   `mayBlockNow()`): the worker's other connections stay with it meanwhile (the dispatch
///   watcher's tests: a busy event loop that starts no watcher).
/// - `/hang`: never returns (to exercise the master's heartbeat timeout).
/// - `/exit/<code>`: terminates the worker with `exit(code)` (code 0...255; simulates a crash).
/// - `/health`: "ok\n" (a health check: never shed by --max-queue-time, docs/overload.md).
/// - `/echo`: the request body back, with `X-Body-Length`.
/// - `/stream/<n>`: a streamed body of n pieces "chunk 0\n" ... "chunk <n-1>\n" (n capped at 1000000).
/// - `/events/<n>/<ms>`, `/events-fail/<n>`, `/produce/<n>`, `/producers`: bodies written by an
///   async producer while they go out (DebugStreams.swift).
/// - `/upload-count`, `/upload-stats`: a request body that streams in (DebugUploads.swift).
/// - anything else: "debug pid=<pid>\n", with `X-Body-Length` (the body length herdd framed).
package struct DebugHandler: AsyncHandler, DecidesBlockingPerRequest {
    /// Longest `/sleep/<ms>` (longer requests sleep this long).
    package static let maxSleepMs = 60_000
    /// Most pieces `/stream/<n>` sends.
    package static let maxStreamChunks = 1_000_000
    package static let maxWorkMicros = 60_000_000

    /// Sleeps and burns CPU: other connections of a busy worker are dispatched meanwhile.
    /// Decided per request (`mayBlockNow()` before `/sleep`, `/work`, `/hang`), so that its
    /// async requests and its quick answers pay nothing for the dispatch machinery.
    package var mayBlock: Bool { true }

    /// The handler (`debug` in a handler spec).
    package init() {}

    /// `/async-sleep/...`, `/async-error` and `/upload-count` are async; every other endpoint is answered now.
    package func respond(to request: HTTPRequest, context: HandlerContext) -> HandlerOutcome {
        if request.path.hasPrefix("/upload-") {
            if request.path == "/upload-stats" { return .response(DebugUploads.stats()) }
            let body = context.requestBody
            return .async { try await DebugUploads.count(request, body: body) }
        }
        guard request.path.hasPrefix("/async-") else { return .response(handle(request, context: context)) }
        return .async { try await Self.answerAsync(request) }
    }

    /// `/upload-count`'s body streams in.
    package func streamsBody(of head: HTTPRequest) -> Bool { DebugUploads.streams(head.path) }

    /// What `/async-error` throws.
    package struct RequestedFailure: Error, CustomStringConvertible {
        package var description: String { "failure requested by /async-error" }
    }

    /// `/async-sleep/<ms>`, `/async-error`.
    static func answerAsync(_ request: HTTPRequest) async throws -> HTTPResponse {
        let segs = request.path.split(separator: "/", omittingEmptySubsequences: true)
        if segs.count == 1 && segs[0] == "async-error" { throw RequestedFailure() }
        guard segs.count == 2, segs[0] == "async-sleep", let ms = Int(segs[1]), ms >= 0 else { return .errorResponse(status: 400) }
        let total = min(ms, DebugHandler.maxSleepMs)
        // Throws CancellationError at once when the task is cancelled.
        try await Task.sleep(for: .milliseconds(total))
        return .text(200, "slept \(total)\n")
    }

    /// Serves the endpoints listed on the type (all but `/async-sleep/` and `/async-error`).
    package func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        let segs = request.path.split(separator: "/", omittingEmptySubsequences: true)
        let cmd = segs.first.map(String.init) ?? ""
        let arg = segs.count == 2 ? Int(segs[1]) : nil
        if let produced = DebugStreams.response(segs) { return produced }
        switch (cmd, segs.count) {
        case ("sleep", 2):
            guard let ms = arg, ms >= 0 else { return .errorResponse(status: 400) }
            context.mayBlockNow() // usleep holds the worker: its other connections go to idle workers
            let total = min(ms, DebugHandler.maxSleepMs)
            var left = total
            while left > 0 {
                let step = min(left, 100)
                Sys.sleep(micros: UInt32(step * 1000))
                left -= step
            }
            return .text(200, "slept \(total)\n")
        case ("work", 2), ("spin", 2):
            guard let us = arg, us >= 0 else { return .errorResponse(status: 400) }
            let total = min(us, DebugHandler.maxWorkMicros)
            if cmd == "work" { context.mayBlockNow() }
            // CLOCK_THREAD_CPUTIME_ID: CPU time actually spent, so on a loaded machine the
            // request costs `us` of CPU like real work would (not `us` of wall time).
            let end = DebugHandler.cpuNanos() + UInt64(total) * 1000
            while DebugHandler.cpuNanos() < end {} // the clock read (a syscall) is the work
            return .text(200, "worked \(total)\n")
        case ("hang", 1):
            context.mayBlockNow()
            while true { Sys.yieldProcessor() }
        case ("exit", 2):
            guard let code = arg, (0...255).contains(code) else { return .errorResponse(status: 400) }
            Sys.exit(Int32(code))
        case ("health", 1):
            return .text(200, "ok\n")
        case ("echo", 1):
            var r = HTTPResponse(status: 200, headers: ["Content-Type": "application/octet-stream"],
                                 body: .bytes(request.body))
            r.headers.add("X-Body-Length", String(request.body.count))
            return r
        case ("stream", 2):
            guard let n = arg, n >= 0 else { return .errorResponse(status: 400) }
            return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; charset=utf-8"],
                                body: .stream(CountingStream(count: min(n, DebugHandler.maxStreamChunks))))
        default:
            var r = HTTPResponse.text(200, "debug pid=\(context.pid)\n")
            // The body length herdd framed, whatever the path (the differential parser test).
            r.headers.add("X-Body-Length", String(request.body.count))
            return r
        }
    }
}

extension DebugHandler {
    static func cpuNanos() -> UInt64 { threadCPUNanos() }
}

/// Yields "chunk 0\n", "chunk 1\n", ... `count` times.
final class CountingStream: BodyStream {
    private let next_ = Mutex(0)
    let count: Int

    init(count: Int) { self.count = count }

    func next() -> [UInt8]? {
        next_.withLock { i in
            guard i < count else { return nil }
            defer { i += 1 }
            return Array("chunk \(i)\n".utf8)
        }
    }
}
