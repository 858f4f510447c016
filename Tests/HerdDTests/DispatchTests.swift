import Handlers
import Testing
@testable import HerdD

/// Issue 12: queue-time histogram rendering, quantiles, and the worker's dispatch argument.
@Suite struct QueueTimeTests {
    func listener(buckets: [Int: UInt64], sumMicros: UInt64, handedOff: UInt64 = 0, received: UInt64 = 0) -> MetricsSnapshot.ListenerStats {
        var l = MetricsSnapshot.ListenerStats(name: "web", address: "127.0.0.1:80", family: "tcp")
        var c = [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount)
        let q = Scoreboard.queueCounterOffset
        c[q + Scoreboard.QueueField.sumMicros.rawValue] = sumMicros
        var count: UInt64 = 0
        for (b, n) in buckets {
            if b < Scoreboard.queueBoundsMicros.count { c[q + Scoreboard.QueueField.bucket0.rawValue + b] = n }
            count += n
        }
        c[q + Scoreboard.QueueField.count.rawValue] = count
        c[q + Scoreboard.QueueField.handedOff.rawValue] = handedOff
        c[q + Scoreboard.QueueField.received.rawValue] = received
        l.add(c)
        return l
    }

    @Test func layoutFitsTheSlot() {
        #expect(Scoreboard.queueCounterCount <= Scoreboard.queueWords)
        #expect(Scoreboard.QueueField.bucket0.rawValue + Scoreboard.queueBoundsMicros.count <= Scoreboard.QueueField.handedOff.rawValue)
        #expect(Scoreboard.queueBase + Scoreboard.maxListeners * Scoreboard.queueWords <= Scoreboard.slotWords)
        #expect(Scoreboard.listenerBase + Scoreboard.maxListeners * Scoreboard.listenerWords <= Scoreboard.queueBase)
        #expect(Scoreboard.Field.asyncDrainCancelled.rawValue < Scoreboard.listenerBase)
    }

    @Test func quantiles() {
        // 98 requests <= 100 us, 1 <= 5 ms (bucket 5), 1 beyond 2.5 s (+Inf).
        let l = listener(buckets: [0: 98, 5: 1, 99: 1], sumMicros: 3_000_000)
        #expect(l.queueCount == 100)
        #expect(l.queueQuantileMicros(0.5) == 100)
        #expect(l.queueQuantileMicros(0.99) == 5000)
        #expect(l.queueQuantileMicros(1.0) == UInt64.max)
        #expect(l.queueQuantileText(0.99) == "<=5ms")
        #expect(l.queueQuantileText(1.0) == ">2.5s")
        #expect(listener(buckets: [:], sumMicros: 0).queueQuantileText(0.99) == "-")
    }

    @Test func durations() {
        #expect(durationText(100) == "100us")
        #expect(durationText(2500) == "2.5ms")
        #expect(durationText(1_000_000) == "1s")
        #expect(durationText(2_500_000) == "2.5s")
    }

    @Test func rendered() {
        var m = MetricsSnapshot(version: "1", masterPID: 1, generation: 1, desiredWorkers: 2)
        m.listeners = [listener(buckets: [0: 3, 4: 1], sumMicros: 2700, handedOff: 5, received: 4)]
        m.dispatchWakeups = 6
        m.dispatchEmptyWakeups = 2
        let t = m.prometheusText()
        #expect(t.contains("herdd_request_queue_seconds_bucket{listener=\"web\",le=\"0.0001\"} 3\n"))
        #expect(t.contains("herdd_request_queue_seconds_bucket{listener=\"web\",le=\"0.0025\"} 4\n"))
        #expect(t.contains("herdd_request_queue_seconds_bucket{listener=\"web\",le=\"+Inf\"} 4\n"))
        #expect(t.contains("herdd_request_queue_seconds_sum{listener=\"web\"} 0.0027\n"))
        #expect(t.contains("herdd_request_queue_seconds_count{listener=\"web\"} 4\n"))
        #expect(t.contains("herdd_dispatch_handed_off_total{listener=\"web\"} 5\n"))
        #expect(t.contains("herdd_dispatch_received_total{listener=\"web\"} 4\n"))
        #expect(t.contains("herdd_dispatch_wakeups_total 6\n"))
        #expect(t.contains("herdd_dispatch_empty_wakeups_total 2\n"))
        #expect(m.statusLine.hasSuffix(", queue p99 web <=2.5ms"))
        let j = StatusReport.json(m)
        #expect(j.contains("\"queue\":{\"count\":4,"))
        #expect(j.contains("\"handed_off\":5,\"received\":4"))
        #expect(j.contains("\"dispatch_wakeups\":6,\"dispatch_empty_wakeups\":2"))
        let table = StatusReport.table(m)
        #expect(table.contains("Q-P99"))
        #expect(table.contains("dispatch: wakeups 6  empty 2"))
    }

    @Test func workerArgumentsCarryTheDispatchSocket() throws {
        let args = WorkerRole.Arguments(slot: 1, generation: 1, masterPID: 10, scoreboardFD: 5, dispatchFD: 6,
                                        listenerNames: ["web"], settings: [])
        #expect(args.commandLine.contains("--dispatch-fd"))
        #expect(try WorkerRole.parse(Array(args.commandLine.dropFirst())) == args)
    }

    @Test func builtInHandlersDeclareWhetherTheyBlock() throws {
        #expect(try HandlerRegistry.make("hello").mayBlock == false)
        #expect(try HandlerRegistry.make("health").mayBlock == false)
        #expect(try HandlerRegistry.make("static:/tmp").mayBlock == false)
        #expect(try HandlerRegistry.make("debug").mayBlock == true)
        struct UserHandler: Handler {
            func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse { .text(200, "x") }
        }
        #expect(UserHandler().mayBlock == true) // assumed to block unless it says otherwise
    }
}
