import Testing
@testable import HerdD

/// --max-queue-time's admission at arrival (Worker/Admission.swift): join the dispatch queue,
/// or be answered 503 now because the wait there would likely pass the limit.
@Suite struct AdmissionTests {
    let ms: UInt64 = 1_000_000 // ns
    let limit: UInt64 = 50 * 1_000_000

    func admits(_ length: Int?, service: UInt64 = 7_000_000, head: UInt64? = nil, hit: Bool) -> Bool {
        Admission.admits(queueLength: length, serviceNanos: service, workers: 4, headAgeNanos: head,
                         limitNanos: limit, limitBeingHit: hit)
    }

    @Test func anEmptyOrUnknownQueueAdmits() {
        #expect(admits(0, hit: true))
        #expect(admits(nil, hit: true))
        #expect(admits(nil, hit: false))
        // No service time measured yet (the first handler): only the head's age can refuse.
        #expect(admits(1000, service: 0, hit: true))
    }

    /// The estimated wait (length x service / workers) against a quarter of the limit while it
    /// is being hit, half otherwise: 4 workers at 7 ms, limit 50 ms.
    @Test func theQueuesEstimatedWaitDecides() {
        // 7 ahead: 12.25 ms <= 12.5 ms (a quarter); 8 ahead: 14 ms.
        #expect(admits(7, hit: true))
        #expect(!admits(8, hit: true))
        // Not being hit: up to half the limit, 25 ms (14 ahead: 24.5 ms; 15: 26.25 ms).
        #expect(admits(14, hit: false))
        #expect(!admits(15, hit: false))
    }

    /// The change of issue 28's follow-up: a request that would wait too long is refused even
    /// when nothing was shed yet (before, everything was admitted then, and shed late).
    @Test func refusesWhenTheLimitIsNotBeingHitYet() {
        #expect(!admits(100, hit: false))
        #expect(!admits(1, head: 26 * ms, hit: false))
    }

    /// FIFO: a newcomer waits at least as long as the head has, whatever the length says.
    @Test func anOldHeadRefuses() {
        #expect(admits(1, head: 25 * ms, hit: true))
        #expect(!admits(1, head: 25 * ms + 1, hit: true))
        #expect(!admits(1, service: 0, head: 40 * ms, hit: false))
    }

    /// No division by zero workers (the config says at least one; the rule does not rely on it).
    @Test func zeroWorkersCountAsOne() {
        #expect(Admission.admits(queueLength: 1, serviceNanos: 12 * ms, workers: 0, headAgeNanos: nil,
                                 limitNanos: limit, limitBeingHit: true))
        #expect(!Admission.admits(queueLength: 2, serviceNanos: 12 * ms, workers: 0, headAgeNanos: nil,
                                  limitNanos: limit, limitBeingHit: true))
    }
}
