import HerdHTTP
import HerdSys

/// A response body written by an async producer while it goes out: server-sent events, rows
/// from a database cursor, an upstream's body passed on. The worker sends each piece as it
/// comes (chunked for HTTP/1.1) and never waits for the producer: its event loop serves other
/// connections meanwhile, and the producer's `write` waits only when `bufferLimit` bytes are
/// still unsent (back-pressure from a slow client).
///
/// ```swift
/// router.get("ticks") { _, _ in
///     HTTPResponse(status: 200, headers: ["Content-Type": "text/event-stream"],
///                  body: .stream(StreamedBody { writer in
///         for i in 0..<10 {
///             try await writer.write("data: tick \(i)\n\n")
///             try await Task.sleep(for: .seconds(1))
///         }
///     }))
/// }
/// ```
///
/// The producer starts when the response's head is queued, as a task on the worker's event
/// loop (like async handlers: no thread hop, docs/async.md). It is cancelled (its `write`
/// throws `CancellationError`) when the client goes away, the request was HEAD, or a drain
/// reaches --graceful-timeout. If it throws, the response is cut short: the connection closes
/// without the last chunk, so the client can tell.
public final class StreamedBody: ProducedBodyStream, @unchecked Sendable {
    /// What the producer writes with.
    public struct Writer: Sendable {
        fileprivate let body: StreamedBody

        /// Queues `bytes` to be sent. Waits while `bufferLimit` bytes are unsent; throws
        /// `CancellationError` once the response is abandoned (the client left).
        public func write(_ bytes: [UInt8]) async throws { try await body.append(bytes) }
        /// Queues the UTF-8 bytes of `text`.
        public func write(_ text: String) async throws { try await body.append(Array(text.utf8)) }
    }

    /// The producer: writes the body with the writer; returning ends the body.
    public typealias Producer = @Sendable (Writer) async throws -> Void

    /// Unsent bytes at which `write` waits, by default.
    public static let defaultBufferLimit = 64 * 1024

    private enum State { case notStarted, producing, finished, failed, abandoned }

    private let produce: Producer
    private let bufferLimit: Int
    /// Guards everything below: the producer may run on any thread (a task with no executor
    /// preference, a client library's I/O thread), the consumer is the worker's loop.
    private let mutex = ThreadMutex()
    private var state = State.notStarted
    /// Bytes written and not yet taken by the connection.
    private var unsent: [UInt8] = []
    /// The last poll found nothing: the next write (or the end) calls `wake`.
    private var consumerWaiting = false
    private var wake: (@Sendable () -> Void)? = nil
    /// A write waiting for room under `bufferLimit`.
    private var producerWaiting: CheckedContinuation<Void, any Error>? = nil
    private var task: Task<Void, Never>? = nil

    /// A body that `produce` writes; `write` waits while `bufferLimit` bytes are unsent.
    public init(bufferLimit: Int = StreamedBody.defaultBufferLimit, _ produce: @escaping Producer) {
        self.produce = produce
        self.bufferLimit = max(1, bufferLimit)
    }

    // MARK: - The connection's side (ProducedBodyStream)

    public func start(on executor: any TaskExecutor, wake: @escaping @Sendable () -> Void) {
        mutex.lock()
        guard state == .notStarted else { mutex.unlock(); return } // abandoned before it started
        state = .producing
        self.wake = wake
        mutex.unlock()
        let produce = self.produce
        let t = Task(executorPreference: executor) {
            do {
                try await produce(Writer(body: self))
                self.end(.finished)
            } catch {
                self.end(.failed)
            }
        }
        mutex.lock()
        task = t
        let abandoned = state == .abandoned
        mutex.unlock()
        if abandoned { t.cancel() }
    }

    public func poll() -> BodyPiece {
        mutex.lock()
        if !unsent.isEmpty {
            var taken: [UInt8] = []
            swap(&taken, &unsent)
            let waiting = producerWaiting
            producerWaiting = nil
            mutex.unlock()
            waiting?.resume() // room again
            return .bytes(taken)
        }
        let piece: BodyPiece
        switch state {
        case .finished: piece = .end
        case .failed, .abandoned: piece = .failed
        case .notStarted, .producing:
            consumerWaiting = true
            piece = .notYet
        }
        mutex.unlock()
        return piece
    }

    public func abandon() {
        mutex.lock()
        state = .abandoned
        unsent = []
        wake = nil
        let t = task
        let waiting = producerWaiting
        producerWaiting = nil
        mutex.unlock()
        t?.cancel()
        waiting?.resume(throwing: CancellationError())
    }

    // MARK: - The producer's side

    private func append(_ bytes: [UInt8]) async throws {
        try Task.checkCancellation()
        mutex.lock()
        guard state == .producing else {
            mutex.unlock()
            throw CancellationError() // abandoned (or written to after its end)
        }
        unsent.append(contentsOf: bytes)
        let full = unsent.count >= bufferLimit
        let waker = takeWaker()
        mutex.unlock()
        waker?()
        if full { try await waitForRoom() }
    }

    /// Under the mutex: the waker, if the consumer waits for news (once per wait).
    private func takeWaker() -> (@Sendable () -> Void)? {
        guard consumerWaiting else { return nil }
        consumerWaiting = false
        return wake
    }

    /// Waits until the connection took the unsent bytes (or the body was abandoned: throws).
    private func waitForRoom() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                mutex.lock()
                // Checked under the mutex: a cancellation after this check finds the stored
                // continuation in its handler; one before it is seen here.
                if state != .producing || Task.isCancelled {
                    mutex.unlock()
                    c.resume(throwing: CancellationError())
                } else if unsent.count < bufferLimit {
                    mutex.unlock()
                    c.resume()
                } else {
                    producerWaiting = c
                    mutex.unlock()
                }
            }
        } onCancel: {
            mutex.lock()
            let waiting = producerWaiting
            producerWaiting = nil
            mutex.unlock()
            waiting?.resume(throwing: CancellationError())
        }
    }

    private func end(_ final: State) {
        mutex.lock()
        if state == .producing { state = final }
        task = nil
        let waker = takeWaker()
        mutex.unlock()
        waker?()
    }
}

/// Why `collect(upTo:)` (on a produced body) gave up.
public enum CollectBodyError: Error, Equatable {
    /// The producer failed (or the body was abandoned): the body is incomplete.
    case failed
    /// The body grew past the limit given.
    case tooLarge
}

extension ProducedBodyStream {
    /// Starts the producer on `executor` and gathers the whole body, as a client would get it:
    /// for tests of handlers that stream, and for code that needs the bytes at once.
    public func collect(upTo maxBytes: Int, on executor: any TaskExecutor = globalConcurrentExecutor) async throws -> [UInt8] {
        let (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        start(on: executor) { wake.yield() }
        var woken = wakes.makeAsyncIterator()
        var bytes: [UInt8] = []
        while true {
            switch poll() {
            case .bytes(let piece):
                guard bytes.count + piece.count <= maxBytes else {
                    abandon()
                    throw CollectBodyError.tooLarge
                }
                bytes += piece
            case .notYet:
                // A wake-up between the poll and this wait is kept (buffered): none is lost.
                guard await woken.next() != nil else { throw CollectBodyError.failed }
            case .end:
                return bytes
            case .failed:
                throw CollectBodyError.failed
            }
        }
    }
}
