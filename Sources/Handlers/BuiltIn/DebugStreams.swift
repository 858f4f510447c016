import Synchronization

/// The debug handler's produced bodies (StreamedBody), for tests and demos of streamed
/// responses (docs/async.md, "Streamed response bodies"):
/// - `/events/<n>/<ms>`: "event 0\n" ... "event <n-1>\n", one every `ms` milliseconds
///   (`Task.sleep`: the worker serves others meanwhile); n capped at 100000, ms at 60000.
/// - `/events-fail/<n>`: n events at once, then the producer throws (the body is cut short).
/// - `/produce/<n>`: n pieces of 16 KiB ("0123456789abcdef" repeated), written as fast as the
///   client takes them (back-pressure); n capped at 100000.
/// - `/producers`: how many of this process's producers are running now.
enum DebugStreams {
    static let maxEvents = 100_000
    static let piece = Array(String(repeating: "0123456789abcdef", count: 1024).utf8)
    /// Producers started and not yet ended, in this process.
    static let running = Atomic<Int>(0)

    struct Failure: Error {}

    /// The response for `segs` (the path's segments), or nil if it is none of these endpoints.
    static func response(_ segs: [Substring]) -> HTTPResponse? {
        let cmd = segs.first ?? ""
        // Other debug endpoints (/sleep, /work: the benchmarks') pay one comparison, no parsing.
        guard cmd == "events" || cmd == "events-fail" || cmd == "produce" || cmd == "producers" else { return nil }
        let args = segs.dropFirst().map { Int($0) }
        func stream(_ produce: @escaping StreamedBody.Producer) -> HTTPResponse {
            HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; charset=utf-8"],
                         body: .stream(StreamedBody { writer in
                running.add(1, ordering: .relaxed)
                defer { running.subtract(1, ordering: .relaxed) }
                try await produce(writer)
            }))
        }
        switch (cmd, args.count) {
        case ("events", 2):
            guard let n = args[0], let ms = args[1], n >= 0, ms >= 0 else { return .errorResponse(status: 400) }
            let count = min(n, maxEvents), pause = min(ms, DebugHandler.maxSleepMs)
            return stream { writer in
                for i in 0..<count {
                    if i > 0 && pause > 0 { try await Task.sleep(for: .milliseconds(pause)) }
                    try await writer.write("event \(i)\n")
                }
            }
        case ("events-fail", 1):
            guard let n = args[0], n >= 0 else { return .errorResponse(status: 400) }
            let count = min(n, maxEvents)
            return stream { writer in
                for i in 0..<count { try await writer.write("event \(i)\n") }
                throw Failure()
            }
        case ("produce", 1):
            guard let n = args[0], n >= 0 else { return .errorResponse(status: 400) }
            let count = min(n, maxEvents)
            return stream { writer in
                for _ in 0..<count { try await writer.write(piece) }
            }
        case ("producers", 0):
            return .text(200, "\(running.load(ordering: .relaxed))\n")
        default:
            return nil
        }
    }
}
