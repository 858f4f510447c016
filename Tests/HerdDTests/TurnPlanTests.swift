import Testing
@testable import HerdD

/// Issue 26: the decision of a turn of the worker's loop (TurnPlan.swift), from plain values.
/// Every branch of the wait, the routing of events, the saturated turn's new work and the
/// turn's end.
@Suite struct TurnPlanTests {
    // MARK: - The wait

    @Test func waitTimeoutByState() {
        let idle = TurnPlan.WaitInputs(idleWaitMillis: 333)
        #expect(TurnPlan.wait(idle) == TurnPlan.Wait(probeFirst: false, timeoutMillis: 333))
        var s = idle
        s.draining = true
        #expect(TurnPlan.wait(s).timeoutMillis == 100)
        s.acceptPaused = true // paused wins over draining: it must look again soon
        #expect(TurnPlan.wait(s).timeoutMillis == 20)
        s.jobsReady = true // jobs of its own: no sleep at all
        #expect(TurnPlan.wait(s).timeoutMillis == 0)
    }

    @Test func aWatchingWorkerProbesFirst() {
        #expect(TurnPlan.wait(.init(watching: true)).probeFirst)
        #expect(!TurnPlan.wait(.init(watching: false)).probeFirst)
        // The probe does not change the timeout of the wait that follows an empty probe.
        #expect(TurnPlan.wait(.init(idleWaitMillis: 400, watching: true)).timeoutMillis == 400)
    }

    @Test func theSleepEndsWhenTheSweepIsDue() {
        let wait = TurnPlan.Wait(probeFirst: false, timeoutMillis: 1000)
        #expect(wait.timeout(untilSweep: 250) == 250)
        #expect(wait.timeout(untilSweep: 5000) == 1000)
        // A zero wait stays zero, and the clock is not read for it.
        var read = false
        func untilSweep() -> Int32 { read = true; return 7 }
        #expect(TurnPlan.Wait(probeFirst: false, timeoutMillis: 0).timeout(untilSweep: untilSweep()) == 0)
        #expect(!read)
    }

    @Test func millisUntilSweep() {
        let ms: UInt64 = 1_000_000
        // Rounded up: 1 ns before the mark is still a 1 ms wait, never 0.
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 1000 * ms - 1, draining: false) == 1)
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 400 * ms, draining: false) == 600)
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 400 * ms + 1, draining: false) == 600)
        // Due or overdue: 1, so the loop does not spin with a zero wait.
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 1000 * ms, draining: false) == 1)
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 5000 * ms, draining: false) == 1)
        // Draining: every 100 ms.
        #expect(TurnPlan.millisUntilSweep(lastSweep: 0, now: 30 * ms, draining: true) == 70)
    }

    // MARK: - The events

    /// Listener 0 serves a blocking handler, listener 1 a non-blocking one.
    let mayBlock = [true, false]

    @Test func aWokenTurnTakesEverythingAsItComes() {
        var turn = TurnPlan(saturated: false, blockingHandlersRun: 0)
        #expect(turn.route(.connection(9), mayBlock: mayBlock, staleFDs: []) == .serve(fd: 9))
        #expect(turn.route(.listener(0), mayBlock: mayBlock, staleFDs: []) == .accept(listener: 0))
        #expect(turn.route(.listener(1), mayBlock: mayBlock, staleFDs: []) == .accept(listener: 1))
        #expect(turn.route(.dispatch, mayBlock: mayBlock, staleFDs: []) == .receiveDispatched)
        #expect(turn.route(.signals, mayBlock: mayBlock, staleFDs: []) == .readSignals)
        #expect(turn.blockingListener == nil && !turn.dispatchReady)
        var next = true
        #expect(turn.newWork(blockingHandlersRun: 0, dispatchNext: &next) == .none)
        #expect(next)
    }

    @Test func aSaturatedTurnDefersNewWorkOnBlockingQueues() {
        var turn = TurnPlan(saturated: true, blockingHandlersRun: 0)
        #expect(turn.route(.connection(9), mayBlock: mayBlock, staleFDs: []) == .serve(fd: 9))
        #expect(turn.route(.listener(1), mayBlock: mayBlock, staleFDs: []) == .accept(listener: 1))
        #expect(turn.route(.listener(0), mayBlock: mayBlock, staleFDs: []) == .nothing)
        #expect(turn.route(.dispatch, mayBlock: mayBlock, staleFDs: []) == .nothing)
        #expect(turn.route(.signals, mayBlock: mayBlock, staleFDs: []) == .readSignals)
        #expect(turn.blockingListener == 0)
        #expect(turn.dispatchReady)
        // A listener index outside the table (cannot happen) is accepted on, which refuses it.
        #expect(turn.route(.listener(5), mayBlock: mayBlock, staleFDs: []) == .accept(listener: 5))
    }

    @Test func theFirstBlockingListenerReadyIsKept() {
        var turn = TurnPlan(saturated: true, blockingHandlersRun: 0)
        let three = [false, true, true]
        _ = turn.route(.listener(2), mayBlock: three, staleFDs: [])
        _ = turn.route(.listener(1), mayBlock: three, staleFDs: [])
        #expect(turn.blockingListener == 2)
    }

    /// The re-entrant case: serving an event ran a handler whose hand-offs closed other
    /// connections of the batch; their events later in the batch are skipped.
    @Test func eventsOfConnectionsHandedOffInTheBatchAreSkipped() {
        var turn = TurnPlan(saturated: false, blockingHandlersRun: 0)
        var stale: [Int32] = []
        #expect(turn.route(.connection(7), mayBlock: mayBlock, staleFDs: stale) == .serve(fd: 7))
        stale.append(8) // connection 7's handler handed 8 off
        #expect(turn.route(.connection(8), mayBlock: mayBlock, staleFDs: stale) == .nothing)
        #expect(turn.route(.connection(9), mayBlock: mayBlock, staleFDs: stale) == .serve(fd: 9))
    }

    @Test func theExecutorsWakeupRunsJobsAtTheEnd() {
        var turn = TurnPlan(saturated: false, blockingHandlersRun: 0)
        #expect(!turn.runsJobs(hasLocalJobs: false))
        #expect(turn.runsJobs(hasLocalJobs: true))
        #expect(turn.route(.executor, mayBlock: mayBlock, staleFDs: []) == .nothing)
        #expect(turn.executorWoken)
        #expect(turn.runsJobs(hasLocalJobs: false))
    }

    @Test func tagsThatAreNotAWorkersAreIgnored() {
        var turn = TurnPlan(saturated: true, blockingHandlersRun: 0)
        for tag: EpollTag? in [nil, .upgradePipe, .upgradeHandover, .metricsListener(0), .metricsClient(4)] {
            #expect(turn.route(tag, mayBlock: mayBlock, staleFDs: []) == .nothing)
        }
        #expect(turn == TurnPlan(saturated: true, blockingHandlersRun: 0))
    }

    // MARK: - The saturated turn's new work

    func saturatedTurn(listener: Int?, dispatch: Bool, handlersBefore: Int = 5) -> TurnPlan {
        var turn = TurnPlan(saturated: true, blockingHandlersRun: handlersBefore)
        if let listener { _ = turn.route(.listener(listener), mayBlock: [true, true], staleFDs: []) }
        if dispatch { _ = turn.route(.dispatch, mayBlock: [true, true], staleFDs: []) }
        return turn
    }

    @Test func oneQueueReadyGivesTheWork() {
        var next = true
        #expect(saturatedTurn(listener: 1, dispatch: false).newWork(blockingHandlersRun: 5, dispatchNext: &next) == .acceptOne(listener: 1))
        #expect(next) // no alternation with one queue
        #expect(saturatedTurn(listener: nil, dispatch: true).newWork(blockingHandlersRun: 5, dispatchNext: &next) == .receiveDispatched)
        next = false
        #expect(saturatedTurn(listener: nil, dispatch: true).newWork(blockingHandlersRun: 5, dispatchNext: &next) == .receiveDispatched)
        #expect(!next)
        #expect(saturatedTurn(listener: nil, dispatch: false).newWork(blockingHandlersRun: 5, dispatchNext: &next) == .none)
    }

    @Test func bothQueuesReadyAlternate() {
        var next = true
        var taken: [TurnPlan.NewWork] = []
        for _ in 0..<4 { taken.append(saturatedTurn(listener: 0, dispatch: true).newWork(blockingHandlersRun: 5, dispatchNext: &next)) }
        #expect(taken == [.receiveDispatched, .acceptOne(listener: 0), .receiveDispatched, .acceptOne(listener: 0)])
        #expect(next)
    }

    @Test func noNewWorkAfterABlockingHandlerRan() {
        var next = true
        // The worker's own connections ran a blocking handler in this turn: that was its work.
        #expect(saturatedTurn(listener: 0, dispatch: true).newWork(blockingHandlersRun: 6, dispatchNext: &next) == .none)
        #expect(next) // and no alternation step
        // The counter wraps (&+=): a change is a change.
        let wrapped = saturatedTurn(listener: 0, dispatch: false, handlersBefore: Int.max)
        #expect(wrapped.newWork(blockingHandlersRun: Int.min, dispatchNext: &next) == .none)
    }

    // MARK: - The turn's end

    @Test func resumesAcceptingOnlyWhenEveryConditionHolds() {
        func resumes(paused: Bool = true, draining: Bool = false, now: UInt64 = 10, resumeAt: UInt64 = 10,
                     atLimit: Bool = false, overShare: Bool = false) -> Bool {
            TurnPlan.resumesAccepting(paused: paused, draining: draining, now: now, resumeAt: resumeAt,
                                      asyncAtLimit: atLimit, overShare: overShare)
        }
        #expect(resumes())
        #expect(!resumes(paused: false))
        #expect(!resumes(draining: true))
        #expect(!resumes(now: 9))
        #expect(!resumes(resumeAt: .max)) // a listener shut down by the master: never again
        #expect(!resumes(atLimit: true))
        #expect(!resumes(overShare: true))
    }

    @Test func theShareIsAskedLastAndOnlyWhenItMatters() {
        var asked = 0
        func overShare() -> Bool { asked += 1; return false }
        _ = TurnPlan.resumesAccepting(paused: false, draining: false, now: 0, resumeAt: 0, asyncAtLimit: false, overShare: overShare())
        _ = TurnPlan.resumesAccepting(paused: true, draining: true, now: 0, resumeAt: 0, asyncAtLimit: false, overShare: overShare())
        _ = TurnPlan.resumesAccepting(paused: true, draining: false, now: 0, resumeAt: 1, asyncAtLimit: false, overShare: overShare())
        _ = TurnPlan.resumesAccepting(paused: true, draining: false, now: 0, resumeAt: 0, asyncAtLimit: true, overShare: overShare())
        #expect(asked == 0)
        #expect(TurnPlan.resumesAccepting(paused: true, draining: false, now: 0, resumeAt: 0, asyncAtLimit: false, overShare: overShare()))
        #expect(asked == 1)
    }

    @Test func sweepEverySecondOrEvery100msWhileDraining() {
        let ms: UInt64 = 1_000_000
        #expect(!TurnPlan.sweepDue(now: 999 * ms, lastSweep: 0, draining: false))
        #expect(TurnPlan.sweepDue(now: 1000 * ms, lastSweep: 0, draining: false))
        #expect(!TurnPlan.sweepDue(now: 99 * ms, lastSweep: 0, draining: true))
        #expect(TurnPlan.sweepDue(now: 100 * ms, lastSweep: 0, draining: true))
        #expect(TurnPlan.sweepInterval(draining: false) == 1000 * ms)
        #expect(TurnPlan.sweepInterval(draining: true) == 100 * ms)
    }

    @Test func exitOnlyAFinishedDrain() {
        #expect(TurnPlan.mayExit(draining: true, activeCount: 0, asyncHoldsDrain: false))
        #expect(!TurnPlan.mayExit(draining: false, activeCount: 0, asyncHoldsDrain: false))
        #expect(!TurnPlan.mayExit(draining: true, activeCount: 1, asyncHoldsDrain: false))
        #expect(!TurnPlan.mayExit(draining: true, activeCount: 0, asyncHoldsDrain: true))
    }
}
