import Handlers

/// Human (`herdd status`) and script (`--json`) renderings of a MetricsSnapshot.
enum StatusReport {
    static func table(_ m: MetricsSnapshot) -> String {
        var out = "herdd \(m.version)  master pid \(m.masterPID)  generation \(m.generation)\n"
        out += m.statusLine + "\n"
        let r = m.requestsByClass
        out += "requests: 1xx \(r[0])  2xx \(r[1])  3xx \(r[2])  4xx \(r[3])  5xx \(r[4])  bytes out \(m.bytesOut)  active \(m.active)\n"
        if !m.restarts.isEmpty {
            out += "restarts: " + m.restarts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: "  ") + "\n"
        }
        out += "\n" + pad("LISTENER", 12) + pad("ADDRESS", 24) + pad("ACCEPTED", 10) + pad("WAKEUPS", 10) + pad("EMPTY", 8) + pad("BACKLOG", 9)
            + pad("QUEUED", 10) + pad("Q-P50", 9) + pad("Q-P99", 9) + pad("HANDED", 8) + "TAKEN\n"
        for l in m.listeners {
            let backlog = l.backlog.map { "\($0)/\(l.backlogLimit ?? 0)" } ?? "-"
            out += pad(l.name, 12) + pad(l.address, 24) + pad("\(l.accepted)", 10) + pad("\(l.wakeups)", 10)
                + pad("\(l.emptyWakeups)", 8) + pad(backlog, 9)
                + pad("\(l.queueCount)", 10) + pad(l.queueQuantileText(0.5), 9) + pad(l.queueQuantileText(0.99), 9)
                + pad("\(l.handedOff)", 8) + "\(l.received)\n"
        }
        out += "dispatch: wakeups \(m.dispatchWakeups)  empty \(m.dispatchEmptyWakeups)  (QUEUED: requests timed from readable to handler start; HANDED/TAKEN: connections a busy worker passed on / workers took)\n"
        let shed = m.listeners.filter { $0.shed.contains { $0 > 0 } }
        if !shed.isEmpty {
            out += "shed (--max-queue-time, 503): " + shed.map { l in
                l.name + " " + ShedReason.allCases.map { "\($0.label) \(l.shed[$0.rawValue])" }.joined(separator: " ")
            }.joined(separator: "  ") + (m.shedding ? "  (shedding now)" : "") + "\n"
        }
        out += "\n" + pad("WORKER", 8) + pad("PID", 9) + pad("GEN", 5) + pad("STATE", 10) + pad("REQUESTS", 10) + pad("ACCEPTED", 10)
            + pad("ACTIVE", 8) + pad("HEARTBEAT", 11) + "UPTIME\n"
        for w in m.workers {
            out += pad("\(w.slot)", 8) + pad("\(w.pid)", 9) + pad("\(w.generation)", 5) + pad(w.state, 10) + pad("\(w.requests)", 10)
                + pad("\(w.accepted)", 10) + pad("\(w.active)", 8) + pad(format1(w.heartbeatAgeSeconds) + "s", 11)
                + format1(w.uptimeSeconds) + "s\n"
        }
        return out
    }

    static func json(_ m: MetricsSnapshot) -> String {
        func str(_ s: String) -> String { JSONText.quote(s) }
        let listeners = m.listeners.map { l in
            "{\"name\":\(str(l.name)),\"address\":\(str(l.address)),\"family\":\(str(l.family)),\"accepted\":\(l.accepted),"
                + "\"wakeups\":\(l.wakeups),\"empty_wakeups\":\(l.emptyWakeups),\"drain_eagain\":\(l.drainEagain),"
                + "\"backlog\":\(l.backlog.map(String.init) ?? "null"),\"backlog_limit\":\(l.backlogLimit.map(String.init) ?? "null"),"
                + "\"queue\":{\"count\":\(l.queueCount),\"sum_seconds\":\(Double(l.queueSumMicros) / 1e6),"
                + "\"p50_le_seconds\":\(l.queueQuantileMicros(0.5).map { $0 == UInt64.max ? "null" : "\(Double($0) / 1e6)" } ?? "null"),"
                + "\"p99_le_seconds\":\(l.queueQuantileMicros(0.99).map { $0 == UInt64.max ? "null" : "\(Double($0) / 1e6)" } ?? "null"),"
                + "\"buckets\":[\(l.queueBuckets.map(String.init).joined(separator: ","))]},"
                + "\"handed_off\":\(l.handedOff),\"received\":\(l.received),"
                + "\"shed\":{\(ShedReason.allCases.map { "\(str($0.label)):\(l.shed[$0.rawValue])" }.joined(separator: ","))}}"
        }
        let workers = m.workers.map { w in
            "{\"slot\":\(w.slot),\"pid\":\(w.pid),\"generation\":\(w.generation),\"state\":\(str(w.state)),"
                + "\"requests\":\(w.requests),\"accepted\":\(w.accepted),\"active\":\(w.active),"
                + "\"heartbeat_age_seconds\":\(w.heartbeatAgeSeconds),\"uptime_seconds\":\(w.uptimeSeconds)}"
        }
        let restarts = m.restarts.sorted { $0.key < $1.key }.map { "\(str($0.key)):\($0.value)" }
        let r = m.requestsByClass
        return "{\"version\":\(str(m.version)),\"master_pid\":\(m.masterPID),\"generation\":\(m.generation),"
            + "\"workers_desired\":\(m.desiredWorkers),\"busy\":\(m.count(state: "busy")),\"idle\":\(m.count(state: "idle")),"
            + "\"accepted\":\(m.accepted),\"active\":\(m.active),\"bytes_out\":\(m.bytesOut),"
            + "\"requests\":{\"1xx\":\(r[0]),\"2xx\":\(r[1]),\"3xx\":\(r[2]),\"4xx\":\(r[3]),\"5xx\":\(r[4])},"
            + "\"restarts\":{\(restarts.joined(separator: ","))},\"upgrades\":\(m.upgrades),"
            + "\"shedding\":\(m.shedding),\"dispatch_wakeups\":\(m.dispatchWakeups),\"dispatch_empty_wakeups\":\(m.dispatchEmptyWakeups),"
            + "\"listeners\":[\(listeners.joined(separator: ","))],\"workers\":[\(workers.joined(separator: ","))]}\n"
    }

    private static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}
