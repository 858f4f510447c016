import Synchronization
import Testing
@testable import Handlers
@testable import HerdHTTP

/// StreamedBody: the producer/connection hand-over, back-pressure, failure and abandon, driven
/// here by `collect` or by polling by hand (herdd's worker polls on its loop the same way).
/// A value other threads set or bump.
final class Shared: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

@Suite struct StreamedBodyTests {
    @Test func piecesThenEnd() async throws {
        let body = StreamedBody { writer in
            for i in 0..<3 {
                try await Task.sleep(for: .milliseconds(2))
                try await writer.write("part \(i)\n")
            }
        }
        let bytes = try await body.collect(upTo: 1000)
        #expect(String(decoding: bytes, as: UTF8.self) == "part 0\npart 1\npart 2\n")
    }

    @Test func aFailingProducerCutsTheBody() async {
        struct Boom: Error {}
        let body = StreamedBody { writer in
            try await writer.write("half")
            throw Boom()
        }
        await #expect(throws: CollectBodyError.failed) { try await body.collect(upTo: 1000) }
    }

    @Test func collectStopsAtItsLimit() async {
        let body = StreamedBody { writer in
            for _ in 0..<100 { try await writer.write([UInt8](repeating: 1, count: 100)) }
        }
        await #expect(throws: CollectBodyError.tooLarge) { try await body.collect(upTo: 1000) }
    }

    @Test func beforeStartNothingIsReadyAndAnAbandonedBodyNeverStarts() async throws {
        let ran = Shared()
        let body = StreamedBody { _ in ran.add() }
        #expect(body.poll() == .notYet)
        body.abandon()
        body.start(on: globalConcurrentExecutor) {}
        try await Task.sleep(for: .milliseconds(50))
        #expect(ran.value == 0)
        #expect(body.poll() == .failed)
    }

    /// The producer waits once `bufferLimit` bytes are unsent, and goes on as they are taken.
    @Test func backPressure() async throws {
        let written = Shared()
        let body = StreamedBody(bufferLimit: 10) { writer in
            for _ in 0..<5 {
                try await writer.write([UInt8](repeating: 7, count: 10))
                written.add()
            }
        }
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        body.start(on: globalConcurrentExecutor) { wake.yield() }
        // Nobody polls: the first write fills the buffer and waits for room.
        try await Task.sleep(for: .milliseconds(100))
        #expect(written.value == 0)
        var total = 0
        var woken = wakes.makeAsyncIterator()
        poll: while true {
            switch body.poll() {
            case .bytes(let b): total += b.count
            case .notYet: _ = await woken.next()
            case .end: break poll
            case .failed: Issue.record("failed"); break poll
            }
        }
        #expect(total == 50 && written.value == 5)
    }

    /// The connection went away: the producer's pending and next writes throw, and it ends.
    @Test func abandonCancelsTheProducer() async throws {
        let ended = Shared()
        let cancelled = Shared()
        let body = StreamedBody(bufferLimit: 4) { writer in
            defer { ended.add() }
            do {
                while true { try await writer.write("more") } // waits for room after the first
            } catch is CancellationError {
                cancelled.add()
                throw CancellationError()
            }
        }
        body.start(on: globalConcurrentExecutor) {}
        try await Task.sleep(for: .milliseconds(50))
        body.abandon()
        for _ in 0..<200 where ended.value == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(ended.value == 1 && cancelled.value == 1)
        #expect(body.poll() == .failed)
    }

    /// A producer that sleeps: the consumer is woken (once per wait) when it writes again.
    @Test func wakesTheConsumerAfterNotYet() async throws {
        let wakes = Shared()
        let body = StreamedBody { writer in
            try await Task.sleep(for: .milliseconds(30))
            try await writer.write("late")
        }
        body.start(on: globalConcurrentExecutor) { wakes.add() }
        #expect(body.poll() == .notYet)
        for _ in 0..<200 where wakes.value == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(wakes.value >= 1)
        #expect(body.poll() == .bytes(Array("late".utf8)))
    }
}
