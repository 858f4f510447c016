/// Everything herdd exports, gathered by the master from the scoreboard, its own counters and
/// the kernel (accept queues). Rendered as Prometheus text, STATUS= and `herdd status`.
///
/// Why not swift-metrics / swift-prometheus: their registries hold counters of the process that
/// increments them. herdd's counters are written by N worker processes into a shared-memory
/// scoreboard and must stay readable when every worker is busy, so the master reads the
/// scoreboard at scrape time and renders the text exposition format itself (a few lines, below).
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

    /// Prometheus text exposition format 0.0.4.
    func prometheusText() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: String) {
            out += name
            if !labels.isEmpty {
                out += "{" + labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
            }
            out += " \(value)\n"
        }
        family("herdd_info", "gauge", "herdd version and master pid.")
        sample("herdd_info", [("version", version), ("master_pid", "\(masterPID)")], "1")
        family("herdd_generation", "gauge", "Configuration generation (incremented by each reload).")
        sample("herdd_generation", [], "\(generation)")
        family("herdd_workers_desired", "gauge", "Worker processes the master keeps running.")
        sample("herdd_workers_desired", [], "\(desiredWorkers)")
        family("herdd_workers", "gauge", "Worker processes by state.")
        for s in ["starting", "idle", "busy", "draining"] { sample("herdd_workers", [("state", s)], "\(count(state: s))") }
        family("herdd_connections_accepted_total", "counter", "Connections accepted, per listener.")
        for l in listeners { sample("herdd_connections_accepted_total", [("listener", l.name)], "\(l.accepted)") }
        family("herdd_connections_active", "gauge", "Open client connections in all workers.")
        sample("herdd_connections_active", [], "\(active)")
        family("herdd_requests_total", "counter", "Responses sent, by status class.")
        for (i, n) in counters.requestsByClass.enumerated() { sample("herdd_requests_total", [("code", "\(i + 1)xx")], "\(n)") }
        family("herdd_response_bytes_total", "counter", "Bytes written to clients (headers and bodies).")
        sample("herdd_response_bytes_total", [], "\(counters.bytesOut)")
        family("herdd_worker_restarts_total", "counter", "Workers replaced, by reason.")
        for r in ["crash", "timeout", "max-requests", "reload", "ttou", "graceful-timeout"] {
            sample("herdd_worker_restarts_total", [("reason", r)], "\(counters.restarts[r] ?? 0)")
        }
        family("herdd_upgrades_total", "counter", "Hot upgrades (SIGUSR2) this master completed.")
        sample("herdd_upgrades_total", [], "\(counters.upgrades)")
        family("herdd_epoll_wakeups_total", "counter", "epoll_wait returns that reported a listener, per listener.")
        for l in listeners { sample("herdd_epoll_wakeups_total", [("listener", l.name)], "\(l.wakeups)") }
        family("herdd_accept_empty_wakeups_total", "counter",
               "Wakeups whose first accept4 gave EAGAIN (another worker took the connection): the thundering herd.")
        for l in listeners { sample("herdd_accept_empty_wakeups_total", [("listener", l.name)], "\(l.emptyWakeups)") }
        family("herdd_accept_drain_eagain_total", "counter", "EAGAINs that ended an accept loop after at least one accept (normal).")
        for l in listeners { sample("herdd_accept_drain_eagain_total", [("listener", l.name)], "\(l.drainEagain)") }
        family("herdd_listen_backlog", "gauge", "Connections waiting in the accept queue (TCP: TCP_INFO tcpi_unacked; unix: sock_diag UNIX_DIAG_RQLEN).")
        for l in listeners { if let b = l.backlog { sample("herdd_listen_backlog", [("listener", l.name)], "\(b)") } }
        family("herdd_listen_backlog_limit", "gauge", "Accept queue limit (TCP: tcpi_sacked of a listening socket; unix: UNIX_DIAG_RQLEN write queue).")
        for l in listeners { if let b = l.backlogLimit { sample("herdd_listen_backlog_limit", [("listener", l.name)], "\(b)") } }
        family("herdd_listen_backlog_max", "gauge", "Highest accept queue length sampled (every 100 ms) in the last \(BacklogWindow.windowSeconds) s.")
        for l in listeners { if let b = l.backlogMax { sample("herdd_listen_backlog_max", [("listener", l.name)], "\(b)") } }
        family("herdd_listen_backlog_alarm_seconds_total", "counter", "Seconds the accept queue spent at or above the backlog alarm threshold.")
        for l in listeners { if let s = l.backlogAlarmSeconds { sample("herdd_listen_backlog_alarm_seconds_total", [("listener", l.name)], "\(s)") } }
        family("herdd_request_duration_seconds", "histogram",
               "Time from reading a request to queueing its response (handler time), per listener.")
        for l in listeners {
            var cumulative: UInt64 = 0
            for (b, bound) in Scoreboard.latencyBoundsMicros.enumerated() {
                cumulative &+= l.latencyBuckets[b]
                sample("herdd_request_duration_seconds_bucket", [("listener", l.name), ("le", secondsText(bound))], "\(cumulative)")
            }
            sample("herdd_request_duration_seconds_bucket", [("listener", l.name), ("le", "+Inf")], "\(l.latencyCount)")
            sample("herdd_request_duration_seconds_sum", [("listener", l.name)], "\(Double(l.latencySumMicros) / 1e6)")
            sample("herdd_request_duration_seconds_count", [("listener", l.name)], "\(l.latencyCount)")
        }
        family("herdd_request_queue_seconds", "histogram",
               "Time a request waited before its handler started, from its first bytes being readable (or its connection accepted or handed over), per listener.")
        for l in listeners {
            var cumulative: UInt64 = 0
            for (b, bound) in Scoreboard.queueBoundsMicros.enumerated() {
                cumulative &+= l.queueBuckets[b]
                sample("herdd_request_queue_seconds_bucket", [("listener", l.name), ("le", secondsText(bound))], "\(cumulative)")
            }
            sample("herdd_request_queue_seconds_bucket", [("listener", l.name), ("le", "+Inf")], "\(l.queueCount)")
            sample("herdd_request_queue_seconds_sum", [("listener", l.name)], "\(Double(l.queueSumMicros) / 1e6)")
            sample("herdd_request_queue_seconds_count", [("listener", l.name)], "\(l.queueCount)")
        }
        family("herdd_dispatch_handed_off_total", "counter",
               "Idle keep-alive connections a busy worker handed to the dispatch socket when they turned readable, per listener.")
        for l in listeners { sample("herdd_dispatch_handed_off_total", [("listener", l.name)], "\(l.handedOff)") }
        family("herdd_dispatch_received_total", "counter", "Connections workers took from the dispatch socket, per listener.")
        for l in listeners { sample("herdd_dispatch_received_total", [("listener", l.name)], "\(l.received)") }
        family("herdd_requests_shed_total", "counter",
               "Requests answered 503 at once because they waited longer than --max-queue-time, per listener and reason.")
        for l in listeners {
            for r in ShedReason.allCases { sample("herdd_requests_shed_total", [("listener", l.name), ("reason", r.label)], "\(l.shed[r.rawValue])") }
        }
        family("herdd_requests_shed_queue_seconds_total", "counter", "Sum of the queue times of the shed requests, per listener.")
        for l in listeners { sample("herdd_requests_shed_queue_seconds_total", [("listener", l.name)], "\(Double(l.shedWaitMicros) / 1e6)") }
        family("herdd_shedding", "gauge", "1 while requests were shed in the last \(ShedWatch.activeSeconds) s.")
        sample("herdd_shedding", [], shedding ? "1" : "0")
        family("herdd_dispatch_wakeups_total", "counter", "epoll_wait returns that reported the dispatch socket.")
        sample("herdd_dispatch_wakeups_total", [], "\(counters.dispatchWakeups)")
        family("herdd_dispatch_empty_wakeups_total", "counter", "Dispatch socket wakeups whose recvmsg found it empty (another worker took the connection).")
        sample("herdd_dispatch_empty_wakeups_total", [], "\(counters.dispatchEmptyWakeups)")
        family("herdd_async_requests_in_flight", "gauge", "Async requests whose task runs, in all workers (bounded per worker by --worker-concurrency).")
        sample("herdd_async_requests_in_flight", [], "\(asyncInFlight)")
        family("herdd_async_requests_total", "counter", "Async requests whose task started.")
        sample("herdd_async_requests_total", [], "\(counters.async[0])")
        family("herdd_async_cancelled_total", "counter",
               "Async requests given up and their task cancelled: past --async-timeout (504), client gone, drain past --graceful-timeout (503).")
        for (i, r) in MetricsSnapshot.asyncReasons.enumerated() { sample("herdd_async_cancelled_total", [("reason", r)], "\(counters.async[i + 1])") }
        family("herdd_worker_async_in_flight", "gauge", "Async requests in flight in each worker slot.")
        for w in workers { sample("herdd_worker_async_in_flight", [("worker", "\(w.slot)")], "\(w.asyncInFlight)") }
        family("herdd_connections_closed_total", "counter",
               "Client connections herdd closed (or handed to another worker), by reason.")
        for r in CloseReason.allCases { sample("herdd_connections_closed_total", [("reason", r.label)], "\(counters.connectionsClosed[r.rawValue])") }
        family("herdd_worker_requests", "gauge", "Requests served by the current process in each worker slot.")
        for w in workers { sample("herdd_worker_requests", [("worker", "\(w.slot)")], "\(w.requests)") }
        family("herdd_worker_accepted", "gauge", "Connections accepted by the current process in each worker slot.")
        for w in workers { sample("herdd_worker_accepted", [("worker", "\(w.slot)")], "\(w.accepted)") }
        family("herdd_worker_heartbeat_age_seconds", "gauge", "Seconds since each worker's last heartbeat.")
        for w in workers { sample("herdd_worker_heartbeat_age_seconds", [("worker", "\(w.slot)")], "\(w.heartbeatAgeSeconds)") }
        return out
    }
}

/// Microseconds as a decimal seconds string for `le` labels ("0.0005", "1", "2.5").
private func secondsText(_ micros: UInt64) -> String {
    let whole = micros / 1_000_000
    var frac = String(micros % 1_000_000)
    if frac == "0" { return "\(whole)" }
    frac = String(repeating: "0", count: 6 - frac.count) + frac
    while frac.hasSuffix("0") { frac.removeLast() }
    return "\(whole).\(frac)"
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

private func escapeLabel(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        default: out.append(c)
        }
    }
    return out
}
