import Glibc
import Testing
@testable import HerdD

/// The master's policies as plain values (Master/Pool.swift, Respawn.swift, Reload.swift,
/// Metrics/BacklogMonitor.swift), driven by a fake clock and a fake scoreboard view.

/// Monotonic nanoseconds that only move when the test says so.
private struct FakeClock {
    var now: UInt64 = 1_000_000_000_000
    mutating func advance(millis: UInt64) { now += millis * 1_000_000 }
}

/// Slot states as the scoreboard would show them.
private struct FakeScoreboard: SlotStateView {
    var states: [Int: Scoreboard.State] = [:]
    func state(_ slot: Int) -> Scoreboard.State { states[slot] ?? .free }
}

private func worker(_ slot: Int, generation: UInt64 = 1, spawnedAt: UInt64 = 0) -> Master.WorkerProc {
    Master.WorkerProc(pid: pid_t(1000 + slot), slot: slot, generation: generation, spawnedAt: spawnedAt)
}

@Suite struct RespawnPolicyTests {
    @Test func backoffDoublesPerDeathAtStartUpToTenSeconds() {
        var clock = FakeClock()
        var p = RespawnPolicy()
        var delays: [UInt64] = []
        for _ in 0..<10 {
            let spawned = clock.now
            clock.advance(millis: 200)
            delays.append(p.delayAfterExit(slot: 3, crashed: true, spawnedAt: spawned, now: clock.now))
        }
        let ms = delays.map { $0 / 1_000_000 }
        #expect(ms == [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000])
        #expect(p.fastDeaths[3] == 10)
    }

    @Test func aCrashAfterTheFirstSecondOrACleanExitResetsTheSlot() {
        var clock = FakeClock()
        var p = RespawnPolicy()
        let spawned = clock.now
        clock.advance(millis: 10)
        do { let r = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: spawned, now: clock.now); #expect(r == 100_000_000) }
        do { let r = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: spawned, now: clock.now); #expect(r == 200_000_000) }
        // Exactly one second after the spawn is no longer a death at start.
        clock = FakeClock(now: spawned + RespawnPolicy.fastDeathNanos)
        do { let r = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: spawned, now: clock.now); #expect(r == 0) }
        #expect(p.fastDeaths[0] == 0)
        do { let r = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: spawned, now: spawned + 1); #expect(r == 100_000_000) }
        // max-requests, timeout and the like: not a crash, no backoff.
        do { let r = p.delayAfterExit(slot: 0, crashed: false, spawnedAt: spawned, now: spawned + 1); #expect(r == 0) }
        #expect(p.fastDeaths[0] == 0)
    }

    @Test func slotsAreCountedApart() {
        var p = RespawnPolicy()
        for _ in 0..<3 { _ = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: 0, now: 1) }
        do { let r = p.delayAfterExit(slot: 1, crashed: true, spawnedAt: 0, now: 1); #expect(r == 100_000_000) }
        #expect(p.fastDeaths == [0: 3, 1: 1])
    }

    @Test func crashLoopNeedsEveryWantedSlotLoopingAndNobodyServing() {
        var p = RespawnPolicy()
        for _ in 0..<(RespawnPolicy.crashLoopThreshold - 1) {
            _ = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: 0, now: 1)
            _ = p.delayAfterExit(slot: 1, crashed: true, spawnedAt: 0, now: 1)
        }
        #expect(!p.isCrashLoop(wanted: 2, serving: 0))
        _ = p.delayAfterExit(slot: 0, crashed: true, spawnedAt: 0, now: 1)
        // One slot of two loops: not yet.
        #expect(!p.isCrashLoop(wanted: 2, serving: 0))
        #expect(p.isCrashLoop(wanted: 1, serving: 0))
        _ = p.delayAfterExit(slot: 1, crashed: true, spawnedAt: 0, now: 1)
        #expect(p.isCrashLoop(wanted: 2, serving: 0))
        // A worker that serves means the binary can run: keep trying.
        #expect(!p.isCrashLoop(wanted: 2, serving: 1))
        p.reset()
        #expect(!p.isCrashLoop(wanted: 2, serving: 0))
        #expect(p.fastDeaths.isEmpty)
    }

    @Test func newWorkersDieAtStartAfterThreeDeathsOfOneSlot() {
        var p = RespawnPolicy()
        _ = p.delayAfterExit(slot: 5, crashed: true, spawnedAt: 0, now: 1)
        _ = p.delayAfterExit(slot: 5, crashed: true, spawnedAt: 0, now: 1)
        _ = p.delayAfterExit(slot: 6, crashed: true, spawnedAt: 0, now: 1)
        #expect(!p.newWorkersDieAtStart)
        _ = p.delayAfterExit(slot: 5, crashed: true, spawnedAt: 0, now: 1)
        #expect(p.newWorkersDieAtStart)
    }
}

@Suite struct PoolPolicyTests {
    @Test func ttinAndTtouStayBetweenOneAndMaxWorkers() {
        var p = PoolPolicy(wanted: 2)
        do { let r = p.resize(by: 1, maxWorkers: 3); #expect(r) }
        #expect(p.wanted == 3)
        do { let r = p.resize(by: 1, maxWorkers: 3); #expect(!r) }
        #expect(p.wanted == 3)
        do { let r = p.resize(by: -1, maxWorkers: 3); #expect(r) }
        do { let r = p.resize(by: -1, maxWorkers: 3); #expect(r) }
        #expect(p.wanted == 1)
        do { let r = p.resize(by: -1, maxWorkers: 3); #expect(!r) }
        #expect(p.wanted == 1)
    }

    @Test func balanceSpawnsWhatIsMissingCountingPendingSlots() {
        let p = PoolPolicy(wanted: 4)
        let sb = FakeScoreboard(states: [0: .idle])
        #expect(p.balance(current: [worker(0)], old: [], pending: 1, states: sb) == .init(spawn: 2))
        #expect(p.balance(current: [worker(0)], old: [], pending: 3, states: sb) == .init())
    }

    @Test func balanceRetiresTheHighestSlotsAsSurplus() {
        let p = PoolPolicy(wanted: 2)
        let cur = [worker(0), worker(4), worker(2), worker(1)]
        let plan = p.balance(current: cur, old: [], pending: 0, states: FakeScoreboard())
        #expect(plan.spawn == 0)
        #expect(Set(plan.retireSurplus) == [1004, 1002])
        #expect(plan.retireOld.isEmpty)
    }

    @Test func rollingReloadStartsOneNewWorkerAtATimeAndRetiresOneOldPerServingNew() {
        let p = PoolPolicy(wanted: 2)
        let old = [worker(0, generation: 1), worker(1, generation: 1)]
        var sb = FakeScoreboard(states: [0: .idle, 1: .busy])
        // Nothing new yet: one spawn, no old worker leaves.
        #expect(p.balance(current: [], old: old, pending: 0, states: sb) == .init(spawn: 1))
        // Queued, or started but not serving: wait.
        #expect(p.balance(current: [], old: old, pending: 1, states: sb) == .init())
        sb.states[2] = .starting
        #expect(p.balance(current: [worker(2, generation: 2)], old: old, pending: 0, states: sb) == .init())
        // The new one serves: the next starts and the lowest old slot retires.
        sb.states[2] = .idle
        #expect(p.balance(current: [worker(2, generation: 2)], old: old, pending: 0, states: sb)
                == .init(spawn: 1, retireOld: [1000]))
        sb.states[3] = .idle
        let cur = [worker(2, generation: 2), worker(3, generation: 2)]
        #expect(p.balance(current: cur, old: [old[1]], pending: 0, states: sb) == .init(retireOld: [1001]))
    }

    @Test func surplusRetiredByTtouDoesNotCountAsServingDuringAReload() {
        // wanted dropped to 1 while 2 new workers serve and 1 old remains: the surplus new one
        // leaves, the remaining new one stands in for the old one.
        let p = PoolPolicy(wanted: 1)
        let sb = FakeScoreboard(states: [0: .idle, 2: .idle, 3: .idle])
        let plan = p.balance(current: [worker(2, generation: 2), worker(3, generation: 2)], old: [worker(0)], pending: 0, states: sb)
        #expect(plan == .init(retireSurplus: [1003], retireOld: [1000]))
    }

    @Test func minSpareGrowsOneStepPerSecondUpToMaxWorkers() {
        var clock = FakeClock()
        var settings = ServerConfig()
        settings.workers = 2
        settings.maxWorkers = 3
        settings.minSpare = 1
        var p = PoolPolicy(wanted: 2)
        var sb = FakeScoreboard(states: [0: .busy, 1: .busy])
        var cur = [worker(0), worker(1)]
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: cur, states: sb) == .grow(idle: 0); #expect(r) }
        #expect(p.wanted == 3)
        // The new worker is not running yet: the pool does not match `wanted`, nothing moves.
        clock.advance(millis: 1500)
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: cur, states: sb); #expect(r == nil) }
        cur.append(worker(2))
        sb.states[2] = .starting
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: cur, states: sb); #expect(r == nil) }
        // Running and busy, but max-workers reached.
        sb.states[2] = .busy
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: cur, states: sb); #expect(r == nil) }
        #expect(p.wanted == 3)
    }

    @Test func stepsWaitASecondAndNeverRunDuringAReload() {
        var clock = FakeClock()
        var settings = ServerConfig()
        settings.workers = 1
        settings.maxWorkers = 8
        settings.minSpare = 2
        var p = PoolPolicy(wanted: 1)
        var sb = FakeScoreboard(states: [0: .busy])
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: true, current: [worker(0)], states: sb); #expect(r == nil) }
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: [worker(0)], states: sb) == .grow(idle: 0); #expect(r) }
        sb.states[1] = .busy
        clock.advance(millis: 999)
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: [worker(0), worker(1)], states: sb); #expect(r == nil) }
        clock.advance(millis: 1)
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: [worker(0), worker(1)], states: sb) == .grow(idle: 0); #expect(r) }
        #expect(p.wanted == 3)
    }

    @Test func maxSpareShrinksDownToWorkersOnly() {
        var clock = FakeClock()
        var settings = ServerConfig()
        settings.workers = 2
        settings.maxWorkers = 8
        settings.maxSpare = 1
        var p = PoolPolicy(wanted: 3)
        let sb = FakeScoreboard(states: [0: .idle, 1: .idle, 2: .idle])
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: [worker(0), worker(1), worker(2)], states: sb) == .shrink(idle: 3); #expect(r) }
        #expect(p.wanted == 2)
        clock.advance(millis: 2000)
        // Two idle, above max-spare, but `workers` is the floor.
        do { let r = p.adjustSpare(now: clock.now, settings: settings, reloading: false, current: [worker(0), worker(1)], states: sb); #expect(r == nil) }
        #expect(p.wanted == 2)
        // Off when neither min-spare nor max-spare is set.
        var off = PoolPolicy(wanted: 3)
        do { let r = off.adjustSpare(now: clock.now, settings: ServerConfig(), reloading: false, current: [worker(0), worker(1), worker(2)], states: sb); #expect(r == nil) }
    }

    @Test func readyCountsIdleAndBusyOnly() {
        let sb = FakeScoreboard(states: [0: .idle, 1: .busy, 2: .starting, 3: .draining, 4: .exited])
        #expect(PoolPolicy.ready((0...5).map { worker($0) }, sb) == 2)
    }
}

@Suite struct ReloadPolicyTests {
    private func serving(_ generation: UInt64, wanted: Int = 2) -> ReloadPolicy.Rollback {
        var c = ServerConfig()
        c.workers = wanted
        return .init(config: c, wanted: wanted, generation: generation)
    }

    @Test func nothingToDecideWithoutAReload() {
        let r = ReloadPolicy()
        #expect(r.decide(readyCurrent: 2, wanted: 2, oldRemaining: 0, newWorkersDieAtStart: true) == .none)
    }

    @Test func completesWhenTheNewGenerationServesInFullAndNoOldWorkerRemains() {
        var r = ReloadPolicy()
        r.begin(serving: serving(1))
        #expect(r.reloading)
        #expect(r.decide(readyCurrent: 1, wanted: 2, oldRemaining: 1, newWorkersDieAtStart: false) == .none)
        #expect(r.decide(readyCurrent: 2, wanted: 2, oldRemaining: 1, newWorkersDieAtStart: false) == .none)
        #expect(r.decide(readyCurrent: 2, wanted: 2, oldRemaining: 0, newWorkersDieAtStart: false) == .complete)
        // Done beats a late death count.
        #expect(r.decide(readyCurrent: 2, wanted: 2, oldRemaining: 0, newWorkersDieAtStart: true) == .complete)
        r.end()
        #expect(!r.reloading)
        #expect(r.rollback == nil)
    }

    @Test func rollsBackWhenNewWorkersDieAtStart() {
        var r = ReloadPolicy()
        r.begin(serving: serving(4))
        #expect(r.decide(readyCurrent: 0, wanted: 2, oldRemaining: 2, newWorkersDieAtStart: true) == .rollBack)
        #expect(r.rollback?.generation == 4)
    }

    @Test func aSecondReloadBeforeTheFirstCompletesKeepsTheGenerationThatServed() {
        var r = ReloadPolicy()
        r.begin(serving: serving(4, wanted: 2))
        r.begin(serving: serving(5, wanted: 6))
        #expect(r.rollback?.generation == 4)
        #expect(r.rollback?.wanted == 2)
        r.end()
        r.begin(serving: serving(6))
        #expect(r.rollback?.generation == 6)
    }
}

@Suite struct BacklogAlarmTests {
    @Test func raisedAfterThreeSecondsAboveClearedByOneSampleBelow() {
        var clock = FakeClock()
        var a = BacklogAlarm()
        do { let r = a.update(above: true, now: clock.now); #expect(r == nil) }
        clock.advance(millis: 2900)
        do { let r = a.update(above: true, now: clock.now); #expect(r == nil) }
        clock.advance(millis: 100)
        do { let r = a.update(above: true, now: clock.now); #expect(r == .raised) }
        #expect(a.alarmed)
        clock.advance(millis: 5000)
        do { let r = a.update(above: true, now: clock.now); #expect(r == nil) }
        do { let r = a.update(above: false, now: clock.now); #expect(r == .cleared) }
        #expect(!a.alarmed)
        do { let r = a.update(above: false, now: clock.now); #expect(r == nil) }
    }

    @Test func aDipBelowRestartsTheHoldTime() {
        var clock = FakeClock()
        var a = BacklogAlarm()
        _ = a.update(above: true, now: clock.now)
        clock.advance(millis: 2500)
        do { let r = a.update(above: false, now: clock.now); #expect(r == nil) }
        clock.advance(millis: 100)
        do { let r = a.update(above: true, now: clock.now); #expect(r == nil) }
        clock.advance(millis: 2900)
        do { let r = a.update(above: true, now: clock.now); #expect(r == nil) }
        clock.advance(millis: 100)
        do { let r = a.update(above: true, now: clock.now); #expect(r == .raised) }
    }
}
