import Handlers
import HerdHTTP
import HerdSys

/// Why a request was shed (the `reason` label of herdd_requests_shed_total).
enum ShedReason: Int, CaseIterable, Sendable {
    /// It waited in herdd (readable or accepted, or handed over, until a worker could start it)
    /// longer than --max-queue-time.
    case queueTime = 0
    /// A trusted front proxy's `X-Request-Start` says it is older than --max-queue-time.
    case requestStart
    /// Refused at arrival by a busy worker's watcher: it had not waited over the limit yet, but
    /// would likely have in the dispatch queue (`Admission.admits`, docs/overload.md).
    case arrival

    var label: String {
        switch self {
        case .queueTime: "queue-time"
        case .requestStart: "request-start"
        case .arrival: "arrival"
        }
    }
}

/// The pure decision of --max-queue-time (docs/overload.md): given when a request started
/// waiting and now, shed it or not, and why. No clocks read here, so it is unit-tested as is.
struct ShedDecision: Equatable, Sendable {
    var reason: ShedReason
    /// How long it waited, as measured for `reason` (µs).
    var waitedMicros: UInt64

    /// - Parameters:
    ///   - queuedSince, now: CLOCK_MONOTONIC ns (readable/accepted -> the handler would start).
    ///   - limitMicros: --max-queue-time in µs (0: never shed).
    ///   - requestStart: a trusted `X-Request-Start` header's value (nil: none or not trusted).
    ///   - wallNowMicros: the wall clock now (µs since the epoch), to compare with it.
    static func decide(queuedSince: UInt64, now: UInt64, limitMicros: UInt64,
                       requestStart: Substring? = nil, wallNowMicros: UInt64 = 0) -> ShedDecision? {
        guard limitMicros > 0 else { return nil }
        let waited = now > queuedSince ? (now - queuedSince) / 1000 : 0
        if waited > limitMicros { return ShedDecision(reason: .queueTime, waitedMicros: waited) }
        if let requestStart, let t = parseRequestStart(requestStart), wallNowMicros > t,
           wallNowMicros - t > limitMicros {
            return ShedDecision(reason: .requestStart, waitedMicros: wallNowMicros - t)
        }
        return nil
    }

    /// `X-Request-Start` as µs since the epoch: `t=<µs>` (Heroku, HAProxy), `t=<ms>`, or
    /// `t=<s>.<frac>` (nginx `${msec}`); the `t=` is optional. The unit of a plain integer is
    /// told by its size (as New Relic and Scout do): ≥ 1e15 µs, ≥ 1e12 ms, else s. Nil if
    /// malformed.
    static func parseRequestStart(_ value: Substring) -> UInt64? {
        var v = value.drop(while: { $0 == " " })
        if v.hasPrefix("t=") { v = v.dropFirst(2) }
        while v.last == " " { v = v.dropLast() }
        let parts = v.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let wholeText = parts.first, !wholeText.isEmpty, wholeText.count <= 19,
              wholeText.allSatisfy({ $0.isASCII && $0.isNumber }), let whole = UInt64(wholeText) else { return nil }
        if parts.count == 2 {
            // Seconds with a fraction: take up to 6 digits of it.
            let frac = parts[1]
            guard !frac.isEmpty, frac.allSatisfy({ $0.isASCII && $0.isNumber }), whole < 1_000_000_000_000 else { return nil }
            let digits = String(frac.prefix(6))
            let scaled = (UInt64(digits) ?? 0) * [1, 100_000, 10_000, 1000, 100, 10, 1][digits.count]
            return whole * 1_000_000 + scaled
        }
        if whole >= 100_000_000_000_000_000 { return nil } // µs past the year 5000: garbage
        if whole >= 1_000_000_000_000_000 { return whole } // µs
        if whole >= 1_000_000_000_000 { return whole * 1000 } // ms
        return whole * 1_000_000
    }
}

/// Master side: whether shedding is active, i.e. the shed counters moved in the last
/// `activeSeconds` (for STATUS=, `herdd status` and herdd_shedding).
struct ShedWatch: Sendable {
    static let activeSeconds: UInt64 = 5
    private var lastTotal: UInt64 = 0
    private var movedAt: UInt64 = 0

    /// `total`: all shed requests so far; `now`: CLOCK_MONOTONIC ns.
    mutating func active(total: UInt64, now: UInt64) -> Bool {
        if total != lastTotal {
            lastTotal = total
            movedAt = now
        }
        return movedAt != 0 && now &- movedAt < ShedWatch.activeSeconds * 1_000_000_000
    }
}

/// Worker side: --max-queue-time, which listeners are never shed, and the current shedding
/// episode (logged once at its start and once at its end, so the log stays short under load).
struct WorkerShedding {
    let limitMicros: UInt64
    let trustRequestStart: Bool
    /// Per listener: its handler is a health check (never shed: a load balancer that sees
    /// 503 from it would take the whole server out, which makes the overload worse).
    let healthListener: [Bool]
    /// Per listener: the debug handler, whose `/health` is never shed either.
    let debugListener: [Bool]
    /// The episode: requests shed in it, when it began and when the last one was shed (ns).
    var episodeShed: UInt64 = 0
    var episodeStart: UInt64 = 0
    var lastShedAt: UInt64 = 0
    /// An episode ends after this long without a shed request.
    static let quietNanos: UInt64 = 2_000_000_000

    init(config: ServerConfig, handlers: [any Handler]) {
        limitMicros = UInt64(config.maxQueueTimeMillis) * 1000
        trustRequestStart = config.trustRequestStart
        healthListener = handlers.map { $0 is HealthHandler }
        debugListener = handlers.map { $0 is DebugHandler }
    }

    func exempt(_ request: HTTPRequest, listener: Int) -> Bool {
        healthListener[listener] || (debugListener[listener] && request.path == "/health")
    }
}

extension ShedDecision {
    /// The answer to a shed request, the same from the worker and from its watcher.
    static var response: HTTPResponse {
        var r = HTTPResponse.errorResponse(status: 503)
        // One second: long enough for a spike's queue to drain, short enough to not lose the client.
        r.headers.set("Retry-After", "1")
        return r
    }

    /// Whether the start of a request (its request line, as far as it came) asks for the debug
    /// handler's `/health`, which is never shed. For the watcher, which answers without
    /// parsing: origin form (`GET /health?x HTTP/1.1`) or absolute form (`GET http://h/health`).
    static func isDebugHealthCheck<C: Collection<UInt8>>(_ head: C) -> Bool {
        guard let space = head.firstIndex(of: UInt8(ascii: " ")) else { return false }
        var target = head[head.index(after: space)...].prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "\r") }
        if target.first != UInt8(ascii: "/") {
            // Absolute form: skip "scheme://authority".
            guard let colon = target.firstIndex(of: UInt8(ascii: ":")) else { return false }
            let rest = target[colon...].dropFirst(3)
            guard let slash = rest.firstIndex(of: UInt8(ascii: "/")) else { return false }
            target = target[slash...]
        }
        return target.elementsEqual("/health".utf8)
    }

    /// Whether the request line is a HEAD request (its 503 then has no body).
    static func isHEAD<C: Collection<UInt8>>(_ head: C) -> Bool { head.starts(with: "HEAD ".utf8) }
}

extension Worker {
    /// The 503 for a request that waited too long, or nil to serve it (`handle` asks before it
    /// runs anything, so a shed request's handler never runs). One branch when off.
    func shedResponse(_ request: HTTPRequest, on conn: Connection, readyAt: UInt64) -> HTTPResponse? {
        guard shedding.limitMicros != 0 else { return nil }
        let header = shedding.trustRequestStart ? request.headers["X-Request-Start"].map { Substring($0) } : nil
        guard !shedding.exempt(request, listener: conn.listener),
              let verdict = ShedDecision.decide(queuedSince: readyAt, now: dispatchState.lastHandlerEnd, limitMicros: shedding.limitMicros,
                                                requestStart: header, wallNowMicros: header == nil ? 0 : realtimeMicros())
        else { return nil }
        scoreboard.observeShed(slot, listener: conn.listener, reason: verdict.reason, micros: verdict.waitedMicros)
        noteShed(verdict, listener: conn.listener)
        return ShedDecision.response
    }

    func noteShed(_ verdict: ShedDecision, listener: Int) {
        // The watcher sheds at arrival while our queues are over the limit (WatcherShedding.swift).
        if verdict.reason == .queueTime { scoreboard.setHeader(.overloadSeenAt, now) }
        if shedding.episodeShed == 0 {
            shedding.episodeStart = now
            log.warning("overload: shedding requests that waited, or would wait, over \(shedding.limitMicros / 1000) ms", metadata: [
                "event": "shedding-start", "listener": "\(listeners[listener].name)", "reason": "\(verdict.reason.label)",
                "waited_us": "\(verdict.waitedMicros)", "max_queue_time_ms": "\(shedding.limitMicros / 1000)",
            ])
        }
        shedding.episodeShed += 1
        shedding.lastShedAt = now
    }

    /// From the sweep: ends the episode after `quietNanos` without a shed request.
    func checkSheddingEpisode() {
        guard shedding.episodeShed > 0, now &- shedding.lastShedAt >= WorkerShedding.quietNanos else { return }
        log.notice("overload: shedding ended", metadata: [
            "event": "shedding-end", "shed": "\(shedding.episodeShed)",
            "duration_ms": "\((shedding.lastShedAt &- shedding.episodeStart) / 1_000_000)",
        ])
        shedding.episodeShed = 0
    }
}
