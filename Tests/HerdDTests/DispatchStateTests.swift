import Testing
@testable import HerdD

/// The worker's dispatch state (Worker/DispatchState.swift): a connection's first request waits
/// from when it became ready elsewhere, later ones from their own turn; the queue time runs to
/// the end of the turn's last handler; an entry dies with its connection, so a new connection
/// on the same fd number inherits nothing.
@Suite struct DispatchStateTests {
    let ms: UInt64 = 1_000_000

    @Test func theFirstRequestWaitsFromItsArrivalElsewhereTheNextFromItsTurn() {
        var state = DispatchState()
        state.arrived(7, readySince: 100 * ms, received: true)
        let first = state.takeReadyAt(7, turnStart: 300 * ms)
        let second = state.takeReadyAt(7, turnStart: 400 * ms)
        #expect(first == 100 * ms)
        #expect(second == 400 * ms) // the arrival was taken by the first request
        // Unknown wait (0): the turn that reads it; so is a connection never entered.
        state.arrived(8, readySince: 0)
        #expect(state.readySince.isEmpty)
        let unknown = state.takeReadyAt(8, turnStart: 500 * ms)
        let neverEntered = state.takeReadyAt(9, turnStart: 600 * ms)
        #expect(unknown == 500 * ms && neverEntered == 600 * ms)
    }

    @Test func queueTimeRunsToTheEndOfTheTurnsLastHandler() {
        var state = DispatchState()
        state.beginTurn(at: 1000 * ms)
        #expect(state.lastHandlerEnd == 1000 * ms)
        #expect(state.queueMicros(readyAt: 1000 * ms) == 0)
        #expect(state.queueMicros(readyAt: 990 * ms) == 10_000)
        // A pipelined request read in this turn waits for the handler before it.
        state.handlerEnded(at: 1030 * ms)
        #expect(state.queueMicros(readyAt: 1000 * ms) == 30_000)
        // A ready time after the clock (another CPU's read): no wait, not a wrap-around.
        #expect(state.queueMicros(readyAt: 2000 * ms) == 0)
        state.beginTurn(at: 1100 * ms)
        #expect(state.lastHandlerEnd == 1100 * ms)
    }

    @Test func onlyAReceivedConnectionAsksForItsRegistrationToBeRemoved() {
        var state = DispatchState()
        state.arrived(5, readySince: 1, received: true)
        state.arrived(6, readySince: 2)
        let accepted = state.remove(6)
        let received = state.remove(5)
        let again = state.remove(5)
        #expect(!accepted && received)
        // Gone with its connection: the next one on fd 5 is neither received nor waiting.
        #expect(!again)
        let next = state.takeReadyAt(5, turnStart: 9)
        #expect(next == 9)
        #expect(state.readySince.isEmpty && state.received.isEmpty)
    }

    @Test func aConnectionClosedBeforeItsFirstRequestLeavesNoWaitBehind() {
        var state = DispatchState()
        state.arrived(4, readySince: 50 * ms)
        state.remove(4)
        state.arrived(4, readySince: 0) // a new connection on the same number
        let ready = state.takeReadyAt(4, turnStart: 70 * ms)
        #expect(ready == 70 * ms)
    }
}
