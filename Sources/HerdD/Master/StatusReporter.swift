import Handlers
import HerdSys

/// systemd status and watchdog, and the metrics the master serves: the STATUS= line (at most
/// once a second, only when it changed), WATCHDOG=1 from the supervision loop, the snapshot of
/// the scoreboard and the master's counters, and the routes of the `metrics` listeners.
extension Master: UpgradeHost {
    /// Half the watchdog interval: ping, but only after this turn read the scoreboard.
    func feedWatchdog(_ now: UInt64) {
        if let wd = watchdogUsec, now - lastWatchdogAt >= wd * 1000 / 2 {
            // Only the supervision loop pings, and only after it read the scoreboard this turn:
            // a master stuck anywhere else stops pinging and systemd kills it.
            if scoreboard.isIntact {
                SystemdNotify.watchdog()
                lastWatchdogAt = now
            }
        }
    }

    func updateStatus(_ now: UInt64) {
        guard now - lastStatusAt >= 1_000_000_000 else { return }
        lastStatusAt = now
        let s = statusLine()
        if s != lastStatus {
            SystemdNotify.status(s)
            lastStatus = s
        }
    }

    func statusLine() -> String {
        let s = snapshot().statusLine
        return stop != nil ? "stopping: " + s : s
    }

    /// Reads the scoreboard, the master's own counters and the accept queues.
    func snapshot() -> MetricsSnapshot {
        let now = monotonicNanos()
        var m = MetricsSnapshot(version: herddVersionString, masterPID: Sys.processID(), generation: generation, desiredWorkers: wanted)
        // Our own counters plus those of the masters we replaced (hot upgrades).
        let inherited = successor.inherited, upgrades = launcher.upgrades
        m.restarts = inherited.restarts.merging(restarts, uniquingKeysWith: +)
        m.upgrades = inherited.upgrades &+ upgrades
        m.accepted = inherited.accepted &+ retired.accepted
        m.requestsByClass = zip(inherited.requestsByClass, retired.statusClasses).map { $0 &+ $1 }
        m.bytesOut = inherited.bytesOut &+ retired.bytesOut
        m.dispatchWakeups = inherited.dispatchWakeups &+ retired.dispatchWakeups
        m.dispatchEmptyWakeups = inherited.dispatchEmptyWakeups &+ retired.dispatchEmptyWakeups
        m.async = zip(inherited.async, retired.async).map { $0 &+ $1 }
        m.connectionsClosed = zip(inherited.connectionsClosed, retired.closes).map { $0 &+ $1 }
        m.listeners = listeners.enumerated().map { i, l in
            var ls = MetricsSnapshot.ListenerStats(name: l.name, address: l.address, family: l.family.rawValue)
            ls.add(retired.listeners[i])
            if let c = inherited.listeners[l.name] { ls.add(c) }
            let alarmMillis = (inherited.backlogAlarmMillis[l.name] ?? 0) &+ backlog.windows[i].aboveNanos / 1_000_000
            ls.backlogAlarmSeconds = Double(alarmMillis) / 1000
            if let (q, lim) = backlog.acceptQueue(i) {
                ls.backlog = q
                ls.backlogLimit = lim
                ls.backlogMax = max(backlog.windows[i].peak(now: now), q)
            }
            return ls
        }
        for w in workers.values.sorted(by: { $0.slot < $1.slot }) {
            let snap = scoreboard.snapshot(w.slot)
            m.accepted &+= snap.accepted
            m.active &+= snap.active
            m.bytesOut &+= snap.bytesOut
            m.dispatchWakeups &+= snap.dispatchWakeups
            m.dispatchEmptyWakeups &+= snap.dispatchEmptyWakeups
            m.asyncInFlight &+= snap.asyncInFlight
            for i in m.async.indices { m.async[i] &+= snap.async[i] }
            for (r, n) in snap.closes.enumerated() { m.connectionsClosed[r] &+= n }
            for c in 0..<5 { m.requestsByClass[c] &+= snap.statusClasses[c] }
            for i in m.listeners.indices { m.listeners[i].add(scoreboard.listenerCounters(w.slot, listener: i)) }
            m.workers.append(MetricsSnapshot.WorkerStats(
                slot: w.slot, pid: w.pid, generation: w.generation,
                state: w.retireReason != nil && snap.state != .exited ? "draining" : snap.state.name,
                requests: snap.requests, accepted: snap.accepted, active: snap.active, asyncInFlight: snap.asyncInFlight,
                heartbeatAgeSeconds: now > snap.heartbeat ? Double(now - snap.heartbeat) / 1e9 : 0,
                uptimeSeconds: Double(now - w.spawnedAt) / 1e9))
        }
        m.shedding = shedWatch.active(total: m.listeners.reduce(0) { $0 &+ $1.shed.reduce(0, &+) }, now: now)
        return m
    }

    /// Requests on the `metrics` listeners: /metrics (Prometheus text), /status, /status.json.
    func metricsResponse(_ req: HTTPRequest) -> HTTPResponse {
        guard req.method == "GET" || req.method == "HEAD" else {
            var r = HTTPResponse.errorResponse(status: 405)
            r.headers.set("Allow", "GET, HEAD")
            return r
        }
        let snap = snapshot()
        switch req.path {
        case "/metrics", "/":
            return HTTPResponse.text(200, snap.prometheusText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/status":
            return HTTPResponse.text(200, StatusReport.table(snap))
        case "/status.json":
            return HTTPResponse.text(200, StatusReport.json(snap), contentType: "application/json")
        default:
            return HTTPResponse.errorResponse(status: 404)
        }
    }

    /// Everything this master has counted, for its successor (including what it inherited).
    func carriedTotals() -> CarriedTotals {
        let s = snapshot()
        var t = CarriedTotals(counters: s.counters)
        for l in s.listeners {
            t.listeners[l.name] = l.counters
            if let secs = l.backlogAlarmSeconds { t.backlogAlarmMillis[l.name] = CarriedTotals.millis(seconds: secs) }
        }
        return t
    }

    // MARK: UpgradeHost

    var isStopping: Bool { stop != nil }
    var gracefulTimeout: Double { config.gracefulTimeout }

    func tookOver() {
        if !metricsListeners.isEmpty && metricsServer == nil {
            do { metricsServer = try MetricsServer(listeners: metricsListeners, epoll: epoll, log: log) } catch {
                log.error("cannot serve metrics: \(error)", metadata: ["event": "metrics-failed"])
            }
        }
        lastStatus = statusLine()
        SystemdNotify.status(lastStatus)
    }

    func stopServingMetrics() { metricsServer?.stopListening() }

    func newMasterFailed() { restoreDeferAccept(config.deferAccept, reason: "upgrade-failed") }
}
