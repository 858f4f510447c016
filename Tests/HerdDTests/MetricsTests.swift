import Testing
@testable import HerdD

@Suite struct MetricsRenderingTests {
    func sample() -> MetricsSnapshot {
        var m = MetricsSnapshot(version: "1.2.3", masterPID: 42, generation: 3, desiredWorkers: 2)
        var l = MetricsSnapshot.ListenerStats(name: "ht\"tp", address: "127.0.0.1:80", family: "tcp")
        var c = [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount)
        c[0] = 10; c[1] = 9; c[2] = 1; c[3] = 9; c[4] = 1500; c[5] = 3
        c[6] = 1; c[6 + 4] = 2 // one request <= 0.5 ms, two <= 10 ms
        l.add(c)
        l.backlog = 4
        l.backlogLimit = 128
        l.backlogMax = 7
        m.listeners = [l]
        m.workers = [
            .init(slot: 0, pid: 100, generation: 3, state: "busy", requests: 5, accepted: 5, active: 1, heartbeatAgeSeconds: 0.5, uptimeSeconds: 10),
            .init(slot: 1, pid: 101, generation: 3, state: "idle", requests: 4, accepted: 4, active: 0, heartbeatAgeSeconds: 0.1, uptimeSeconds: 10),
        ]
        m.accepted = 9
        m.requestsByClass = [0, 8, 0, 1, 0]
        m.restarts = ["crash": 2]
        m.workers[0].asyncInFlight = 3
        m.asyncInFlight = 3
        m.async = [20, 1, 2, 0]
        return m
    }

    @Test func statusLine() {
        #expect(sample().statusLine == "2 workers (1 busy, 1 idle), accepted 9, backlog 4")
    }

    @Test func prometheusText() {
        let t = sample().prometheusText()
        #expect(t.contains("herdd_workers{state=\"busy\"} 1\n"))
        #expect(t.contains("herdd_connections_accepted_total{listener=\"ht\\\"tp\"} 9\n"))
        #expect(t.contains("herdd_accept_empty_wakeups_total{listener=\"ht\\\"tp\"} 1\n"))
        #expect(t.contains("herdd_requests_total{code=\"4xx\"} 1\n"))
        #expect(t.contains("herdd_worker_restarts_total{reason=\"crash\"} 2\n"))
        #expect(t.contains("herdd_listen_backlog{listener=\"ht\\\"tp\"} 4\n"))
        #expect(t.contains("herdd_listen_backlog_max{listener=\"ht\\\"tp\"} 7\n"))
        #expect(t.contains("herdd_async_requests_in_flight 3\n"))
        #expect(t.contains("herdd_worker_async_in_flight{worker=\"0\"} 3\n"))
        #expect(t.contains("herdd_async_requests_total 20\n"))
        #expect(t.contains("herdd_async_cancelled_total{reason=\"deadline\"} 1\n"))
        #expect(t.contains("herdd_async_cancelled_total{reason=\"client-gone\"} 2\n"))
        #expect(t.contains("herdd_async_cancelled_total{reason=\"drain\"} 0\n"))
        // Histogram buckets are cumulative and end with +Inf == count.
        #expect(t.contains("herdd_request_duration_seconds_bucket{listener=\"ht\\\"tp\",le=\"0.0005\"} 1\n"))
        #expect(t.contains("herdd_request_duration_seconds_bucket{listener=\"ht\\\"tp\",le=\"0.005\"} 1\n"))
        #expect(t.contains("herdd_request_duration_seconds_bucket{listener=\"ht\\\"tp\",le=\"0.01\"} 3\n"))
        #expect(t.contains("herdd_request_duration_seconds_bucket{listener=\"ht\\\"tp\",le=\"+Inf\"} 3\n"))
        #expect(t.contains("herdd_request_duration_seconds_sum{listener=\"ht\\\"tp\"} 0.0015\n"))
        // Every sample line belongs to a declared family.
        var declared = Set<String>()
        for line in t.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") { declared.insert(String(line.split(separator: " ")[2])) }
            else if !line.hasPrefix("#") {
                let name = String(line.prefix { $0 != "{" && $0 != " " })
                let base = ["_bucket", "_sum", "_count"].reduce(name) { n, suf in
                    n.hasSuffix(suf) && declared.contains(String(n.dropLast(suf.count))) ? String(n.dropLast(suf.count)) : n
                }
                #expect(declared.contains(base), "undeclared sample \(name)")
            }
        }
    }

    @Test func jsonAndTable() {
        let j = StatusReport.json(sample())
        #expect(j.hasPrefix("{\"version\":\"1.2.3\""))
        #expect(j.contains("\"name\":\"ht\\\"tp\""))
        #expect(j.contains("\"busy\":1"))
        let table = StatusReport.table(sample())
        #expect(table.contains("WORKER"))
        #expect(table.contains("busy"))
    }
}
