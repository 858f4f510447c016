/// Everything herdd exports, gathered by the master from the scoreboard, its own counters and
/// the kernel (accept queues). Rendered as Prometheus text, STATUS= and `herdd status`.
///
/// Why not swift-metrics / swift-prometheus: their registries hold counters of the process that
/// increments them. herdd's counters are written by N worker processes into a shared-memory
/// scoreboard and must stay readable when every worker is busy, so the master reads the
/// scoreboard at scrape time and renders the text exposition format itself
/// (MetricsSnapshot+Prometheus.swift).
///
/// The server-wide counters live in `counters` (also what an upgrade carries to the next
/// master: CarriedTotals) and read as members of the snapshot: `m.bytesOut` is
/// `m.counters.bytesOut`.
@dynamicMemberLookup
struct MetricsSnapshot: Sendable {
    /// Server-wide totals that only grow: summed from the scoreboard, the retired workers and
    /// the masters this one replaced, and handed to the next master in a hot upgrade.
    struct Counters: Equatable, Sendable {
        var requestsByClass = [UInt64](repeating: 0, count: 5)
        var bytesOut: UInt64 = 0
        var accepted: UInt64 = 0
        var restarts: [String: UInt64] = [:]
        var upgrades: UInt64 = 0
        /// Dispatch socket wakeups and empty ones (another worker took the connection).
        var dispatchWakeups: UInt64 = 0
        var dispatchEmptyWakeups: UInt64 = 0
        /// Async requests: tasks started, then requests given up by reason, in this order
        /// (`asyncReasons`); the scoreboard's SlotSnapshot.async has the same order.
        var async = [UInt64](repeating: 0, count: 4)
        /// Connections herdd closed, per `CloseReason` (raw value order).
        var connectionsClosed = CloseReason.zeroCounts
    }

    /// Labels of `herdd_async_cancelled_total`, for `Counters.async[1...]`.
    static let asyncReasons = ["deadline", "client-gone", "drain"]

    struct ListenerStats: Sendable {
        var name: String
        var address: String
        var family: String
        var wakeups: UInt64 = 0
        var accepted: UInt64 = 0
        var emptyWakeups: UInt64 = 0
        var drainEagain: UInt64 = 0
        /// Accept queue length and limit (TCP_INFO tcpi_unacked / tcpi_sacked); nil if unknown.
        var backlog: UInt32? = nil
        var backlogLimit: UInt32? = nil
        /// Highest accept queue length seen by the master's 100 ms sampling in the last minute
        /// (BacklogWindow), and seconds spent at or above the alarm threshold.
        var backlogMax: UInt32? = nil
        var backlogAlarmSeconds: Double? = nil
        var latencySumMicros: UInt64 = 0
        var latencyCount: UInt64 = 0
        var latencyBuckets = [UInt64](repeating: 0, count: Scoreboard.latencyBoundsMicros.count)
        /// Queue time: from a request's first bytes being readable (or its connection accepted,
        /// or handed over by another worker) to its handler's start.
        var queueSumMicros: UInt64 = 0
        var queueCount: UInt64 = 0
        var queueBuckets = [UInt64](repeating: 0, count: Scoreboard.queueBoundsMicros.count)
        /// Connections handed to the dispatch socket by busy workers / taken from it.
        var handedOff: UInt64 = 0
        var received: UInt64 = 0
        /// Requests shed by --max-queue-time, per `ShedReason` (raw value order), and the sum
        /// of their queue times.
        var shed = [UInt64](repeating: 0, count: ShedReason.allCases.count)
        var shedWaitMicros: UInt64 = 0

        /// Adds a vector of counters in Scoreboard.listenerCounters order.
        mutating func add(_ c: [UInt64]) {
            guard c.count >= Scoreboard.listenerCounterCount else { return }
            wakeups &+= c[0]
            accepted &+= c[1]
            emptyWakeups &+= c[2]
            drainEagain &+= c[3]
            latencySumMicros &+= c[4]
            latencyCount &+= c[5]
            for b in 0..<latencyBuckets.count { latencyBuckets[b] &+= c[6 + b] }
            let q = Scoreboard.queueCounterOffset
            queueSumMicros &+= c[q + Scoreboard.QueueField.sumMicros.rawValue]
            queueCount &+= c[q + Scoreboard.QueueField.count.rawValue]
            for b in 0..<queueBuckets.count { queueBuckets[b] &+= c[q + Scoreboard.QueueField.bucket0.rawValue + b] }
            handedOff &+= c[q + Scoreboard.QueueField.handedOff.rawValue]
            received &+= c[q + Scoreboard.QueueField.received.rawValue]
            shed[ShedReason.queueTime.rawValue] &+= c[q + Scoreboard.QueueField.shedQueueTime.rawValue]
            shed[ShedReason.requestStart.rawValue] &+= c[q + Scoreboard.QueueField.shedRequestStart.rawValue]
            shedWaitMicros &+= c[q + Scoreboard.QueueField.shedWaitMicros.rawValue]
            shed[ShedReason.arrival.rawValue] &+= c[Scoreboard.shedArrivalCounterIndex]
        }

        /// The counters in Scoreboard.listenerCounters order (the inverse of `add`), e.g. for
        /// the totals a master hands to its successor in an upgrade.
        var counters: [UInt64] {
            var c = [wakeups, accepted, emptyWakeups, drainEagain, latencySumMicros, latencyCount] + latencyBuckets
            var queue = [UInt64](repeating: 0, count: Scoreboard.queueCounterCount)
            queue[Scoreboard.QueueField.sumMicros.rawValue] = queueSumMicros
            queue[Scoreboard.QueueField.count.rawValue] = queueCount
            for b in 0..<queueBuckets.count { queue[Scoreboard.QueueField.bucket0.rawValue + b] = queueBuckets[b] }
            queue[Scoreboard.QueueField.handedOff.rawValue] = handedOff
            queue[Scoreboard.QueueField.received.rawValue] = received
            queue[Scoreboard.QueueField.shedQueueTime.rawValue] = shed[ShedReason.queueTime.rawValue]
            queue[Scoreboard.QueueField.shedRequestStart.rawValue] = shed[ShedReason.requestStart.rawValue]
            queue[Scoreboard.QueueField.shedWaitMicros.rawValue] = shedWaitMicros
            c += queue
            c.append(shed[ShedReason.arrival.rawValue])
            return c
        }

        /// Upper bound (µs) of the bucket holding the q-quantile of queue time; nil: no
        /// requests; UInt64.max: beyond the last bound.
        func queueQuantileMicros(_ q: Double) -> UInt64? {
            guard queueCount > 0 else { return nil }
            let rank = UInt64((Double(queueCount) * q).rounded(.up))
            var cumulative: UInt64 = 0
            for (b, bound) in Scoreboard.queueBoundsMicros.enumerated() {
                cumulative &+= queueBuckets[b]
                if cumulative >= rank { return bound }
            }
            return UInt64.max
        }

        /// "≤2.5ms", ">2.5s", "-" for a queue-time quantile.
        func queueQuantileText(_ q: Double) -> String {
            guard let us = queueQuantileMicros(q) else { return "-" }
            guard us != UInt64.max else { return ">" + durationText(Scoreboard.queueBoundsMicros.last ?? 0) }
            return "<=" + durationText(us)
        }
    }

    struct WorkerStats: Sendable {
        var slot: Int
        var pid: Int32
        var generation: UInt64
        var state: String
        var requests: UInt64
        var accepted: UInt64
        var active: UInt64
        /// Async requests in flight in this worker.
        var asyncInFlight: UInt64 = 0
        var heartbeatAgeSeconds: Double
        var uptimeSeconds: Double
    }

    var version: String
    var masterPID: Int32
    var generation: UInt64
    var desiredWorkers: Int
    var workers: [WorkerStats] = []
    var listeners: [ListenerStats] = []
    var counters = Counters()
    /// Open client connections (a gauge: not carried over an upgrade).
    var active: UInt64 = 0
    /// Async requests in flight in all workers (a gauge).
    var asyncInFlight: UInt64 = 0
    /// Requests were shed (--max-queue-time) in the last few seconds (the master watches the
    /// shed counters: `ShedWatch`).
    var shedding = false

    /// `m.bytesOut`, `m.requestsByClass[1] &+= n`: the fields of `counters`.
    subscript<T>(dynamicMember path: WritableKeyPath<Counters, T>) -> T {
        get { counters[keyPath: path] }
        set { counters[keyPath: path] = newValue }
    }

    func count(state: String) -> Int { workers.filter { $0.state == state }.count }

    /// The one-line summary used for STATUS=.
    var statusLine: String {
        let backlog = listeners.compactMap(\.backlog).reduce(UInt64(0)) { $0 + UInt64($1) }
        let queue = listeners.filter { $0.queueCount > 0 }.map { "\($0.name) \($0.queueQuantileText(0.99))" }
        return "\(workers.count) workers (\(count(state: "busy")) busy, \(count(state: "idle")) idle), accepted \(counters.accepted), backlog \(backlog)"
            + (queue.isEmpty ? "" : ", queue p99 " + queue.joined(separator: " "))
            + (shedding ? ", shedding" : "")
    }
}

/// Microseconds as "250us", "2.5ms", "1s".
func durationText(_ micros: UInt64) -> String {
    func trim(_ v: Double) -> String {
        let t = Int((v * 10).rounded())
        return t % 10 == 0 ? "\(t / 10)" : "\(t / 10).\(t % 10)"
    }
    if micros < 1000 { return "\(micros)us" }
    if micros < 1_000_000 { return trim(Double(micros) / 1000) + "ms" }
    return trim(Double(micros) / 1e6) + "s"
}
