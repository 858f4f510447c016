import HerdSys

/// Why a streamed request body (``RequestBodyStream``) ended before its end.
public enum RequestBodyError: Error, Equatable, Sendable {
    /// The body grew past `--max-body` (herdd answers 413) or past `collect(upTo:)`'s limit.
    case tooLarge
    /// The client was too slow (`--body-timeout`, `--body-min-rate`): herdd answers 408.
    case timedOut
    /// The chunked framing was invalid: herdd answers 400.
    case malformed
    /// The connection closed before the body's end (the client left, or the response was
    /// sent before the body was read: no one reads it any more).
    case connectionClosed
}

/// A request body that streams in while the handler runs: an `AsyncSequence` of byte chunks,
/// in the order the client sent them, fed by the connection's reads on the worker's loop.
/// A handler gets one in `HandlerContext.requestBody` when its ``AsyncHandler`` said so in
/// ``AsyncHandler/streamsBody(of:)`` (docs/async.md, "Streamed request bodies").
///
/// ```swift
/// var total = 0
/// for try await chunk in body { total += chunk.count }     // as it arrives
/// let whole = try await body.collect(upTo: 1 << 20)         // or all of it, bounded
/// ```
///
/// - **Back-pressure.** The connection stops reading once `bufferLimit` bytes (64 KiB by
///   default) wait unread here, and reads on when the handler took them: a slow handler holds a
///   fast client back, and the worker's memory stays flat whatever the body's size.
/// - **Errors.** Iteration throws ``RequestBodyError`` when the body cannot be completed, and
///   `CancellationError` when the reading task is cancelled (the client left, a deadline).
/// - One reader: the chunks are handed out once (a second iteration goes on where the first
///   stopped).
public final class RequestBodyStream: AsyncSequence, @unchecked Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = any Error

    /// Unread bytes at which the connection stops reading, by default.
    public static let defaultBufferLimit = 64 * 1024

    /// Guards everything below: the reader may run on any thread (a task without the loop's
    /// executor preference), the feeder is the worker's loop.
    private let mutex = ThreadMutex()
    private var pieces: [[UInt8]] = []
    private var firstPiece = 0
    private var buffered = 0
    private var ended = false
    private var failure: RequestBodyError? = nil
    /// The reader waits for the next piece.
    private var reader: CheckedContinuation<[UInt8]?, any Error>? = nil
    /// The feeder stopped at `bufferLimit`: the reader's next take below it calls `wake`.
    private var feederPaused = false
    private var wake: (@Sendable () -> Void)? = nil
    private let bufferLimit: Int

    /// An empty stream that a feeder fills (herdd's connection; tests).
    package init(bufferLimit: Int = RequestBodyStream.defaultBufferLimit) {
        self.bufferLimit = Swift.max(1, bufferLimit)
    }

    /// A complete body: `bytes` as one chunk (tests, a handler that calls another).
    public convenience init(_ bytes: [UInt8]) {
        self.init()
        _ = feed(bytes)
        finish()
    }

    // MARK: - The feeder's side (the connection, on the worker's loop)

    /// Called, from the reader's thread, when the feeder paused and the reader made room.
    package func onRoom(_ wake: @escaping @Sendable () -> Void) {
        mutex.lock()
        self.wake = wake
        mutex.unlock()
    }

    /// Adds a piece. False: `bufferLimit` bytes wait unread; stop feeding until `wake`.
    package func feed(_ bytes: [UInt8]) -> Bool {
        mutex.lock()
        guard !ended && failure == nil else { mutex.unlock(); return true }
        if bytes.isEmpty { mutex.unlock(); return true }
        if let waiting = reader {
            // The reader waits: hand the piece over, nothing buffered.
            reader = nil
            mutex.unlock()
            waiting.resume(returning: bytes)
            return true
        }
        pieces.append(bytes)
        buffered += bytes.count
        let room = buffered < bufferLimit
        if !room { feederPaused = true }
        mutex.unlock()
        return room
    }

    /// The body is complete: the reader gets what is buffered, then the end.
    package func finish() { end(nil) }

    /// The body cannot be completed: the reader gets what is buffered, then `error`.
    package func fail(_ error: RequestBodyError) { end(error) }

    private func end(_ error: RequestBodyError?) {
        mutex.lock()
        guard !ended && failure == nil else { mutex.unlock(); return }
        if let error { failure = error } else { ended = true }
        wake = nil
        let waiting = reader
        reader = nil
        mutex.unlock()
        // A waiting reader had nothing buffered: it gets the end (or the error) at once.
        if let error { waiting?.resume(throwing: error) } else { waiting?.resume(returning: nil) }
    }

    /// Whether the body reached its end (`finish`) or failed.
    package var isOver: Bool {
        mutex.lock()
        defer { mutex.unlock() }
        return ended || failure != nil
    }

    // MARK: - The reader's side

    /// The next chunk, nil at the body's end; waits while none has arrived.
    public func next() async throws -> [UInt8]? {
        try Task.checkCancellation()
        mutex.lock()
        if let piece = takePiece() { return piece } // unlocked by takePiece
        if let failure { mutex.unlock(); throw failure }
        if ended { mutex.unlock(); return nil }
        mutex.unlock()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
                mutex.lock()
                // Checked again under the mutex: a piece, the end or a cancellation may have
                // come between the first look and this one.
                if Task.isCancelled {
                    mutex.unlock()
                    c.resume(throwing: CancellationError())
                } else if let piece = takePiece() {
                    c.resume(returning: piece)
                } else if let failure {
                    mutex.unlock()
                    c.resume(throwing: failure)
                } else if ended {
                    mutex.unlock()
                    c.resume(returning: nil)
                } else {
                    reader = c
                    mutex.unlock()
                }
            }
        } onCancel: {
            mutex.lock()
            let waiting = reader
            reader = nil
            mutex.unlock()
            waiting?.resume(throwing: CancellationError())
        }
    }

    /// Under the mutex: the first buffered piece, if any (then the mutex is released, and the
    /// feeder woken if this made room after it paused).
    private func takePiece() -> [UInt8]? {
        guard firstPiece < pieces.count else { return nil }
        let piece = pieces[firstPiece]
        pieces[firstPiece] = []
        firstPiece += 1
        if firstPiece == pieces.count { pieces.removeAll(keepingCapacity: true); firstPiece = 0 }
        buffered -= piece.count
        var waker: (@Sendable () -> Void)? = nil
        if feederPaused && buffered < bufferLimit {
            feederPaused = false
            waker = wake
        }
        mutex.unlock()
        waker?()
        return piece
    }

    /// The whole body (what is left of it), or ``RequestBodyError/tooLarge`` past `maxBytes`.
    public func collect(upTo maxBytes: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try await next() {
            guard bytes.count + chunk.count <= maxBytes else { throw RequestBodyError.tooLarge }
            bytes += chunk
        }
        return bytes
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate let stream: RequestBodyStream
        public mutating func next() async throws -> [UInt8]? { try await stream.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: self) }
}
