import Testing
@testable import HerdD
import HerdSys

/// Pure parts of the issue-13 lifecycle work: the counters handed over at an upgrade, the
/// backlog window, the drain rule and the worker's comm name.
@Suite struct CarriedTotalsTests {
    @Test func roundTrip() {
        var t = CarriedTotals()
        t.requestsByClass = [1, 200, 3, 40, 5]
        t.bytesOut = 123_456_789
        t.accepted = 77
        t.upgrades = 2
        t.restarts = ["max-requests": 9, "reload": 4]
        t.listeners = ["http": Array(1...UInt64(Scoreboard.listenerCounterCount)),
                       "with space": [UInt64](repeating: 7, count: Scoreboard.listenerCounterCount)]
        t.backlogAlarmMillis = ["http": 2500]
        t.dispatchWakeups = 31
        t.dispatchEmptyWakeups = 4
        #expect(CarriedTotals.decode(t.encoded()) == t)
    }

    /// The text an old master sends and a new one reads (two binaries of different versions):
    /// its lines stay exactly these, in this order.
    /// The backlog alarm time goes to the successor in whole milliseconds, read back from the
    /// seconds the snapshot shows: never one less than it showed (issue 24).
    @Test func backlogAlarmMillisSurviveTheSecondsRoundTrip() {
        for ms in UInt64(0)..<20_000 {
            #expect(CarriedTotals.millis(seconds: Double(ms) / 1000) == ms, "\(ms) ms")
        }
    }

    @Test func wireFormat() {
        var t = CarriedTotals()
        t.requestsByClass = [1, 2, 3, 4, 5]
        t.bytesOut = 6
        t.accepted = 7
        t.upgrades = 8
        t.restarts = ["reload": 10, "crash": 9]
        t.dispatchWakeups = 11
        t.dispatchEmptyWakeups = 12
        t.async = [14, 15, 16, 17]
        let legacy = UInt64(Scoreboard.carriedListenerCounterCount)
        let c = (1...legacy).map(String.init).joined(separator: " ")
        let shed = ((legacy + 1)...UInt64(Scoreboard.shedArrivalCounterIndex)).map(String.init).joined(separator: " ")
        t.listeners = ["web": (1...UInt64(Scoreboard.listenerCounterCount)).map { $0 }]
        t.backlogAlarmMillis = ["web": 13]
        t.connectionsClosed[CloseReason.clientClosed.rawValue] = 14
        t.connectionsClosed[CloseReason.workerExit.rawValue] = 15
        let text = "requests 1 2 3 4 5\nbytes 6\naccepted 7\nupgrades 8\ndispatch 11 12\nasync 14 15 16 17\n"
            + "restart 9 crash\nrestart 10 reload\nlistener \(c) web\nlistener-shed \(shed) web\nlistener-shed-arrival \(Scoreboard.listenerCounterCount) web\nbacklog-alarm-ms 13 web\n"
            + "closed 14 client-closed\nclosed 15 worker-exit\n"
        #expect(t.encoded() == text)
        #expect(CarriedTotals.decode(text) == t)
        #expect(CarriedTotals.decode(text).counters.bytesOut == 6)
    }

    /// What an upgrade hands over per listener (ListenerStats.counters) reads back as the same
    /// stats, queue-time histogram and dispatch counters included.
    @Test func listenerCountersInvertAdd() {
        let c = (1...UInt64(Scoreboard.listenerCounterCount)).map { $0 * 3 }
        var stats = MetricsSnapshot.ListenerStats(name: "http", address: "127.0.0.1:1", family: "ipv4")
        stats.add(c)
        #expect(stats.counters == c)
        #expect(stats.handedOff != 0 && stats.received != 0 && stats.queueCount != 0)
    }

    @Test func malformedAndUnknownLinesAreSkipped() {
        let text = "requests 1 2 3\nbytes x\naccepted 5\nfuture-counter 9\nlistener 1 2 http\nupgrades 3\n"
        let t = CarriedTotals.decode(text)
        #expect(t.requestsByClass == [0, 0, 0, 0, 0])
        #expect(t.bytesOut == 0 && t.accepted == 5 && t.upgrades == 3)
        #expect(t.listeners.isEmpty)
    }
}

@Suite struct BacklogWindowTests {
    static let s: UInt64 = 1_000_000_000

    @Test func peakStaysForTheWindowWhoeverReadsIt() {
        var w = BacklogWindow()
        w.record(9, above: true, now: 100 * Self.s)
        w.record(0, above: false, now: 100 * Self.s + Self.s / 10)
        // Reading does not reset it: the same value for every reader, for a whole window.
        #expect(w.peak(now: 101 * Self.s) == 9)
        #expect(w.peak(now: 101 * Self.s) == 9)
        #expect(w.peak(now: (100 + UInt64(BacklogWindow.windowSeconds) - 1) * Self.s) == 9)
        #expect(w.peak(now: (100 + UInt64(BacklogWindow.windowSeconds)) * Self.s) == 0)
    }

    @Test func ringSlotsAreReusedAfterAWindow() {
        var w = BacklogWindow()
        w.record(5, above: false, now: 10 * Self.s)
        let later = (10 + UInt64(BacklogWindow.windowSeconds)) * Self.s // same ring slot
        w.record(2, above: false, now: later)
        #expect(w.peak(now: later) == 2)
    }

    @Test func timeAboveTheThresholdAccumulates() {
        var w = BacklogWindow()
        var t: UInt64 = 50 * Self.s
        w.record(0, above: false, now: t)
        for _ in 0..<20 { t += Self.s / 10; w.record(10, above: true, now: t) } // 2 s above
        for _ in 0..<10 { t += Self.s / 10; w.record(0, above: false, now: t) }
        #expect(w.aboveNanos == 2 * Self.s)
    }
}

@Suite struct DrainAndTitleTests {
    @Test func drainClosesOnlyIdleConnections() {
        #expect(!DrainPolicy.mayClose(idleFor: 0))
        #expect(!DrainPolicy.mayClose(idleFor: DrainPolicy.idleNanos - 1))
        #expect(DrainPolicy.mayClose(idleFor: DrainPolicy.idleNanos))
    }

    @Test func workerCommFitsFifteenBytes() {
        #expect(ProcessTitle.workerComm(slot: 0) == "herdd: worker 0")
        #expect(ProcessTitle.workerComm(slot: 42) == "herdd: worker42")
        #expect(ProcessTitle.workerComm(slot: 511) == "herdd: w511")
        for slot in [0, 9, 10, 99, 100, 511] { #expect(ProcessTitle.workerComm(slot: slot).utf8.count <= 15) }
    }
}
