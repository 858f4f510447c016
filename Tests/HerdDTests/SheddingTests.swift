import Glibc
import Testing
@testable import HerdD

/// --max-queue-time's decision (Worker/Shedding.swift), the X-Request-Start parser, the
/// master's "shedding" flag and how the shed counters travel in an upgrade.
@Suite struct SheddingTests {
    let ms: UInt64 = 1_000_000 // ns

    @Test func offNeverSheds() {
        #expect(ShedDecision.decide(queuedSince: 0, now: 10_000 * ms, limitMicros: 0) == nil)
    }

    @Test func shedsOnlyBeyondTheLimit() {
        #expect(ShedDecision.decide(queuedSince: 1000 * ms, now: 1100 * ms, limitMicros: 100_000) == nil)
        #expect(ShedDecision.decide(queuedSince: 1000 * ms, now: 1101 * ms, limitMicros: 100_000)
                == ShedDecision(reason: .queueTime, waitedMicros: 101_000))
        // A clock that seems to go back (queuedSince from another CPU's read) waited 0.
        #expect(ShedDecision.decide(queuedSince: 2000 * ms, now: 1000 * ms, limitMicros: 1) == nil)
    }

    @Test func trustedRequestStartCountsTheProxysQueue() {
        let wall: UInt64 = 1_700_000_000_000_000
        let old = "t=\(wall - 300_000)"
        #expect(ShedDecision.decide(queuedSince: 5 * ms, now: 6 * ms, limitMicros: 250_000, requestStart: Substring(old), wallNowMicros: wall)
                == ShedDecision(reason: .requestStart, waitedMicros: 300_000))
        let fresh = "t=\(wall - 200_000)"
        #expect(ShedDecision.decide(queuedSince: 5 * ms, now: 6 * ms, limitMicros: 250_000, requestStart: Substring(fresh), wallNowMicros: wall) == nil)
        // Our own queue time wins when both are over (it is what we measured ourselves).
        #expect(ShedDecision.decide(queuedSince: 0, now: 400 * ms, limitMicros: 250_000, requestStart: Substring(old), wallNowMicros: wall)?.reason == .queueTime)
        // A timestamp from the future (clock skew) or garbage is ignored.
        #expect(ShedDecision.decide(queuedSince: 0, now: 1, limitMicros: 1, requestStart: "t=\(wall + 5_000_000)", wallNowMicros: wall) == nil)
        #expect(ShedDecision.decide(queuedSince: 0, now: 1, limitMicros: 1, requestStart: "t=abc", wallNowMicros: wall) == nil)
    }

    /// The watcher answers without the parser: it reads the method and the target itself.
    @Test func watcherTellsHealthChecksAndHEADFromTheRequestLine() {
        func health(_ s: String) -> Bool { ShedDecision.isDebugHealthCheck(Array(s.utf8)) }
        #expect(health("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(health("HEAD /health?verbose=1 HTTP/1.1\r\n"))
        #expect(health("GET http://example.com/health HTTP/1.1\r\n"))
        #expect(health("GET /health"))  // the line may not be complete yet
        #expect(!health("GET /healthz HTTP/1.1\r\n"))
        #expect(!health("GET /sleep/50 HTTP/1.1\r\n"))
        #expect(!health("GET /x/health HTTP/1.1\r\n"))
        #expect(!health("GET http://example.com HTTP/1.1\r\n"))
        #expect(!health("GET"))
        #expect(!health(""))
        #expect(ShedDecision.isHEAD(Array("HEAD / HTTP/1.1\r\n".utf8)))
        #expect(!ShedDecision.isHEAD(Array("GET / HTTP/1.1\r\n".utf8)))
        #expect(!ShedDecision.isHEAD(Array("HEADER".utf8)))
    }

    @Test func requestStartFormats() {
        #expect(ShedDecision.parseRequestStart("t=1700000000123456") == 1_700_000_000_123_456) // µs
        #expect(ShedDecision.parseRequestStart("t=1700000000123") == 1_700_000_000_123_000) // ms
        #expect(ShedDecision.parseRequestStart("t=1700000000.123") == 1_700_000_000_123_000) // nginx ${msec}
        #expect(ShedDecision.parseRequestStart("1700000000.5") == 1_700_000_000_500_000)
        #expect(ShedDecision.parseRequestStart("t=1700000000.1234567") == 1_700_000_000_123_456)
        #expect(ShedDecision.parseRequestStart("t=1700000000") == 1_700_000_000_000_000) // s
        #expect(ShedDecision.parseRequestStart(" t=1700000000123456 ") == 1_700_000_000_123_456)
        for bad in ["", "t=", "t=-5", "t=1.", "t=.5", "t=1e9", "t=12345678901234567890", "t=1700000000.12x", "t=170000000012345678"] {
            #expect(ShedDecision.parseRequestStart(Substring(bad)) == nil, "\(bad)")
        }
    }

    @Test func sheddingIsActiveWhileTheCounterMoves() {
        var w = ShedWatch()
        let s: UInt64 = 1_000_000_000
        let seen = [(0, 100), (3, 101), (3, 105), (3, 106), (4, 107)].map { w.active(total: $0.0, now: $0.1 * s) }
        #expect(seen == [false, true, true, false, true])
    }

    @Test func shedCountersReachTheMetricsAndSurviveAnUpgrade() {
        var c = [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount)
        let q = Scoreboard.queueCounterOffset
        c[q + Scoreboard.QueueField.shedQueueTime.rawValue] = 7
        c[q + Scoreboard.QueueField.shedRequestStart.rawValue] = 2
        c[q + Scoreboard.QueueField.shedWaitMicros.rawValue] = 1_500_000
        c[Scoreboard.shedArrivalCounterIndex] = 5
        var stats = MetricsSnapshot.ListenerStats(name: "web", address: "127.0.0.1:1", family: "ipv4")
        stats.add(c)
        #expect(stats.shed == [7, 2, 5] && stats.shedWaitMicros == 1_500_000)
        var t = CarriedTotals()
        t.listeners["web"] = stats.counters
        #expect(CarriedTotals.decode(t.encoded()).listeners["web"] == c)
        var m = MetricsSnapshot(version: "x", masterPID: 1, generation: 1, desiredWorkers: 1)
        m.listeners = [stats]
        m.shedding = true
        let text = m.prometheusText()
        #expect(text.contains("herdd_requests_shed_total{listener=\"web\",reason=\"queue-time\"} 7\n"))
        #expect(text.contains("herdd_requests_shed_total{listener=\"web\",reason=\"request-start\"} 2\n"))
        #expect(text.contains("herdd_requests_shed_total{listener=\"web\",reason=\"arrival\"} 5\n"))
        #expect(text.contains("herdd_requests_shed_queue_seconds_total{listener=\"web\"} 1.5\n"))
        #expect(text.contains("herdd_shedding 1\n"))
        #expect(m.statusLine.hasSuffix(", shedding"))
    }

    /// An older master's `listener` line (no shed words) still reads, shed counters zero.
    @Test func olderMastersListenerLineStillReads() {
        let legacy = (1...UInt64(Scoreboard.carriedListenerCounterCount)).map(String.init).joined(separator: " ")
        let t = CarriedTotals.decode("listener \(legacy) web\n")
        #expect(t.listeners["web"]?.count == Scoreboard.listenerCounterCount)
        #expect(t.listeners["web"]?.suffix(3) == [0, 0, 0])
    }

    /// The previous version's `listener-shed` line (three words, no arrivals) still reads.
    @Test func olderMastersShedLineStillReads() {
        let legacy = (1...UInt64(Scoreboard.carriedListenerCounterCount)).map(String.init).joined(separator: " ")
        let t = CarriedTotals.decode("listener \(legacy) web\nlistener-shed 7 2 900 web\n")
        #expect(t.listeners["web"]?.count == Scoreboard.listenerCounterCount)
        #expect(t.listeners["web"]?.suffix(4) == [7, 2, 900, 0])
    }

    /// The watcher's 503s are in its own words (one writer each), and the master's reads of the
    /// slot add them to the worker's: shed per reason, wait, requests, 5xx, closes.
    @Test func watcherCountsAreAddedToTheWorkers() throws {
        #expect(Scoreboard.watcherBase >= Scoreboard.queueBase + Scoreboard.maxListeners * Scoreboard.queueWords)
        #expect(Scoreboard.usedSlotWords <= Scoreboard.slotWords)
        let sb = try Scoreboard(creatingSlots: 2, masterPID: 1)
        defer { close(sb.fd) }
        sb.reset(1, generation: 1)
        // The worker's own: one shed at handler start, one request served.
        sb.observeShed(1, listener: 3, reason: .queueTime, micros: 300)
        sb.bump(1, .requests)
        sb.countWatcherShed(1, listener: 3, reason: .queueTime, micros: 1000, closed: true)
        sb.countWatcherShed(1, listener: 3, reason: .arrival, micros: 0, closed: true)
        sb.countWatcherShed(1, listener: 3, reason: .arrival, micros: 5, closed: false)
        var stats = MetricsSnapshot.ListenerStats(name: "web", address: "127.0.0.1:1", family: "ipv4")
        stats.add(sb.listenerCounters(1, listener: 3))
        #expect(stats.shed == [2, 0, 2] && stats.shedWaitMicros == 1305)
        let snap = sb.snapshot(1)
        #expect(snap.requests == 4 && snap.statusClasses[4] == 3)
        #expect(snap.closes[CloseReason.responseDone.rawValue] == 2)
        // Other listeners and slots untouched; a reset clears them.
        #expect(sb.listenerCounters(1, listener: 2) == [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount))
        #expect(sb.snapshot(0).requests == 0)
        sb.reset(1, generation: 2)
        #expect(sb.snapshot(1).requests == 0 && sb.listenerCounters(1, listener: 3).allSatisfy { $0 == 0 })
    }

    @Test func config() throws {
        var c = ServerConfig()
        #expect(c.maxQueueTimeMillis == 0 && !c.trustRequestStart)
        try c.apply(key: "max-queue-time", value: "250", origin: "test")
        try c.apply(key: "trust-request-start", value: "on", origin: "test")
        let back = try ServerConfig.deserialize(c.serialized())
        #expect(back.maxQueueTimeMillis == 250 && back.trustRequestStart)
        #expect(throws: (any Error).self) { try c.apply(key: "max-queue-time", value: "-1", origin: "test") }
    }
}
