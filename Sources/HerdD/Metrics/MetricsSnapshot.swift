/// Everything herdd exports, gathered by the master from the scoreboard, its own counters and
/// the kernel (accept queues). Rendered as Prometheus text, STATUS= and `herdd status`.
///
/// Why not swift-metrics / swift-prometheus: their registries hold counters of the process that
/// increments them. herdd's counters are written by N worker processes into a shared-memory
/// scoreboard and must stay readable when every worker is busy, so the master reads the
/// scoreboard at scrape time and renders the text exposition format itself (a few lines, below).
struct MetricsSnapshot: Sendable {
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
        var heartbeatAgeSeconds: Double
        var uptimeSeconds: Double
    }

    var version: String
    var masterPID: Int32
    var generation: UInt64
    var desiredWorkers: Int
    var workers: [WorkerStats] = []
    var listeners: [ListenerStats] = []
    var requestsByClass = [UInt64](repeating: 0, count: 5)
    var bytesOut: UInt64 = 0
    var accepted: UInt64 = 0
    var active: UInt64 = 0
    var restarts: [String: UInt64] = [:]
    var upgrades: UInt64 = 0

    func count(state: String) -> Int { workers.filter { $0.state == state }.count }

    /// The one-line summary used for STATUS=.
    var statusLine: String {
        let backlog = listeners.compactMap(\.backlog).reduce(UInt64(0)) { $0 + UInt64($1) }
        return "\(workers.count) workers (\(count(state: "busy")) busy, \(count(state: "idle")) idle), accepted \(accepted), backlog \(backlog)"
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
        for (i, n) in requestsByClass.enumerated() { sample("herdd_requests_total", [("code", "\(i + 1)xx")], "\(n)") }
        family("herdd_response_bytes_total", "counter", "Bytes written to clients (headers and bodies).")
        sample("herdd_response_bytes_total", [], "\(bytesOut)")
        family("herdd_worker_restarts_total", "counter", "Workers replaced, by reason.")
        for r in ["crash", "timeout", "max-requests", "reload", "ttou", "graceful-timeout"] {
            sample("herdd_worker_restarts_total", [("reason", r)], "\(restarts[r] ?? 0)")
        }
        family("herdd_upgrades_total", "counter", "Hot upgrades (SIGUSR2) this master completed.")
        sample("herdd_upgrades_total", [], "\(upgrades)")
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
