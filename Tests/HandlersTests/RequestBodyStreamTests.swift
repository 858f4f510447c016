import Synchronization
import Testing
@testable import Handlers

/// RequestBodyStream: the feeder (herdd's connection, here the test) and the reader (the
/// handler's task): order, back-pressure and its wake-up, the end, failures, cancellation.
@Suite struct RequestBodyStreamTests {
    private func bytes(_ n: Int, _ v: UInt8 = 7) -> [UInt8] { [UInt8](repeating: v, count: n) }

    @Test func chunksInOrderThenTheEnd() async throws {
        let body = RequestBodyStream()
        #expect(body.feed(Array("ab".utf8)))
        #expect(body.feed(Array("cd".utf8)))
        body.finish()
        var seen: [String] = []
        for try await chunk in body { seen.append(String(decoding: chunk, as: UTF8.self)) }
        #expect(seen == ["ab", "cd"])
        #expect(try await body.next() == nil) // stays at its end
    }

    @Test func aWaitingReaderGetsTheNextChunkAndTheEnd() async throws {
        let body = RequestBodyStream()
        let reader = Task { try await body.collect(upTo: 100) }
        try await Task.sleep(for: .milliseconds(20)) // the reader waits for the first chunk
        _ = body.feed(Array("late".utf8))
        body.finish()
        #expect(try await reader.value == Array("late".utf8))
    }

    @Test func backPressurePausesTheFeederUntilTheReaderMakesRoom() async throws {
        let body = RequestBodyStream(bufferLimit: 1000)
        let wakes = Atomic<Int>(0)
        body.onRoom { wakes.add(1, ordering: .relaxed) }
        #expect(body.feed(bytes(600)))
        #expect(!body.feed(bytes(600))) // 1200 unread >= 1000: stop feeding
        #expect(wakes.load(ordering: .relaxed) == 0)
        _ = try await body.next() // 600 unread: room again, the feeder is woken once
        #expect(wakes.load(ordering: .relaxed) == 1)
        _ = try await body.next()
        #expect(wakes.load(ordering: .relaxed) == 1) // no pause since: no second wake-up
        #expect(body.feed(bytes(10)))
    }

    @Test func aFailureReachesTheReaderAfterWhatArrived() async throws {
        let body = RequestBodyStream()
        _ = body.feed(bytes(3))
        body.fail(.tooLarge)
        #expect(try await body.next() == bytes(3))
        await #expect(throws: RequestBodyError.tooLarge) { try await body.next() }
        _ = body.feed(bytes(3)) // after the end: ignored
        body.finish()
        await #expect(throws: RequestBodyError.tooLarge) { try await body.next() }
    }

    @Test func aWaitingReaderGetsTheFailure() async throws {
        let body = RequestBodyStream()
        let reader = Task { try await body.collect(upTo: 100) }
        try await Task.sleep(for: .milliseconds(20))
        body.fail(.connectionClosed)
        await #expect(throws: RequestBodyError.connectionClosed) { try await reader.value }
    }

    @Test func cancellingTheReaderEndsItsWait() async throws {
        let body = RequestBodyStream()
        let reader = Task { try await body.collect(upTo: 100) }
        try await Task.sleep(for: .milliseconds(20))
        reader.cancel()
        await #expect(throws: CancellationError.self) { try await reader.value }
        // A cancelled task does not even look.
        let again = Task { () async throws -> [UInt8]? in
            withUnsafeCurrentTask { $0?.cancel() }
            return try await body.next()
        }
        await #expect(throws: CancellationError.self) { try await again.value }
    }

    @Test func collectStopsAtItsLimit() async {
        let body = RequestBodyStream()
        for _ in 0..<5 { _ = body.feed(bytes(100)) }
        body.finish()
        await #expect(throws: RequestBodyError.tooLarge) { try await body.collect(upTo: 450) }
        let whole = RequestBodyStream(bytes(5))
        #expect((try? await whole.collect(upTo: 5)) == bytes(5))
    }
}
