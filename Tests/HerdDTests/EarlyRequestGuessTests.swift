import Testing
@testable import HerdD

/// The guess whether an accepted connection's request is in already (EarlyRequestGuess.swift).
@Suite struct EarlyRequestGuessTests {
    @Test func readsFirstUntilTwoMissesInARow() {
        var g = EarlyRequestGuess()
        var r = g.readFirst()
        #expect(r)
        g.record(found: false)
        r = g.readFirst()
        #expect(r) // one miss: still 2
        g.record(found: true)
        g.record(found: false)
        r = g.readFirst()
        #expect(r)
        g.record(found: false)
        r = g.readFirst()
        #expect(!r) // two misses from 3: 1, below the threshold
    }

    @Test func probesEveryEighthConnectionWhileItGuessesNo() {
        var g = EarlyRequestGuess()
        for _ in 0..<3 { g.record(found: false) }
        #expect(g.count == 0)
        var asked: [Bool] = []
        for _ in 0..<24 {
            let r = g.readFirst()
            asked.append(r)
            if r { g.record(found: false) }
        }
        #expect(asked.enumerated().filter(\.element).map(\.offset) == [7, 15, 23])
        #expect(g.count == 0) // saturates at 0
    }

    @Test func twoFoundProbesBringTheReadsBack() {
        var g = EarlyRequestGuess()
        for _ in 0..<5 { g.record(found: false) }
        var readsAfter = 0
        var probes = 0
        for _ in 0..<40 {
            guard g.readFirst() else { continue }
            if probes < 2 { probes += 1 } else { readsAfter += 1 }
            g.record(found: true) // the load saturated: requests are in at accept
        }
        #expect(probes == 2)
        #expect(g.count == 3)
        #expect(readsAfter == 40 - 16) // every connection after the second probe (the 16th)
    }
}
