/// The snapshot in the Prometheus text exposition format (0.0.4), served by the master's
/// metrics listener (`/metrics`): one family per counter or gauge, labels escaped, histogram
/// bounds as decimal seconds.
extension MetricsSnapshot {
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
