import Handlers
import HerdSys

/// One async request on a connection (the connection's `asyncCall`), from its parse to its
/// response: while the connection holds it, the connection is "response pending" (it parses
/// nothing more, is not idle and is never handed off).
final class AsyncCall {
    enum State {
        /// Parsed, waiting for a free place under --worker-concurrency.
        case waiting
        /// Its task runs (or awaits).
        case running
        /// Answered, or given up (client gone, deadline, drain): a late result is dropped.
        case done
    }
    let request: HTTPRequest
    /// When the request was read (start of the turn): its latency starts here.
    let startedAt: UInt64
    /// When it became readable (queue-time histogram, at the task's start).
    let readyAt: UInt64
    /// --async-timeout after `startedAt`: past it the task is cancelled and the client gets 504.
    let deadline: UInt64
    var state = State.waiting
    /// What the handler's `respond` returned for the request: its task runs it.
    let work: AsyncWork
    var task: Task<Void, Never>? = nil

    init(request: HTTPRequest, work: @escaping AsyncWork, startedAt: UInt64, readyAt: UInt64, deadline: UInt64) {
        self.request = request
        self.work = work
        self.startedAt = startedAt
        self.readyAt = readyAt
        self.deadline = deadline
    }
}

/// The async part of a handler's answer (`HandlerOutcome.async`).
typealias AsyncWork = @Sendable () async throws -> HTTPResponse

/// A worker's async requests (see docs/async.md): the loop executor their tasks run on, the
/// async handler of each listener, the tasks in flight and those waiting for a place under
/// --worker-concurrency. Touched by the loop thread only.
final class AsyncRequests {
    let executor: LoopExecutor
    /// Per listener: its handler, if it may answer asynchronously (the worker then calls its
    /// `respond(to:context:)` instead of `handle`).
    let handlers: [(any AsyncHandler)?]
    /// Per listener: whether `handlers` has one (asked per request without copying the
    /// optional existential out of the array).
    let isAsync: [Bool]
    /// --worker-concurrency: tasks in flight at most.
    let limit: Int
    let timeoutNanos: UInt64
    /// Tasks started and not yet ended (cancelled ones count until they end: they still hold
    /// what they hold).
    var running = 0
    /// Calls parsed while `running` was at the limit, in arrival order (a ring would save the
    /// shifting; the queue is short and rare).
    var waiting: [(call: AsyncCall, conn: Connection)] = []
    /// Drain: when it began, and whether the in-flight requests were cancelled at
    /// --graceful-timeout (then the worker exits without waiting for their tasks).
    var drainStartedAt: UInt64 = 0
    var drainCancelled = false

    init(handlers: [any Handler], config: ServerConfig) throws(SysError) {
        executor = try LoopExecutor()
        self.handlers = handlers.map { $0 as? any AsyncHandler }
        self.isAsync = self.handlers.map { $0 != nil }
        limit = config.workerConcurrency
        timeoutNanos = UInt64(config.asyncTimeout * 1e9)
    }

    var atLimit: Bool { running >= limit }
    /// Requests in flight or waiting: the worker must not exit while there are any (drain).
    var pending: Int { running + waiting.count }
}

extension Worker {
    // MARK: - Starting

    /// Serves `request` asynchronously with `work`, what its handler's `respond` returned (from
    /// `handle`): the connection waits for `finishAsync`.
    func startAsync(_ request: HTTPRequest, work: @escaping AsyncWork, on conn: Connection, readyAt: UInt64) {
        let call = AsyncCall(request: request, work: work, startedAt: now, readyAt: readyAt,
                             deadline: now &+ asyncRequests.timeoutNanos)
        conn.asyncCall = call
        if asyncRequests.atLimit {
            asyncRequests.waiting.append((call, conn))
        } else {
            launch(call, on: conn)
        }
    }

    /// Starts the call's task on the loop executor (its first job runs at the end of this turn).
    private func launch(_ call: AsyncCall, on conn: Connection) {
        scoreboard.observeQueue(slot, listener: conn.listener, micros: dispatchState.queueMicros(readyAt: call.readyAt))
        call.state = .running
        asyncRequests.running += 1
        scoreboard.store(slot, .asyncInFlight, UInt64(asyncRequests.running))
        scoreboard.bump(slot, .asyncStarted)
        if asyncRequests.atLimit && !acceptPaused {
            // --worker-concurrency reached: step out of the listeners' wait queues (as for
            // EMFILE or --balance spread) so new connections go to other workers; the loop
            // re-adds them on the first turn below the limit.
            unwatchListeners()
        }
        let work = call.work
        let owner = LoopBound((self, call, conn), on: asyncRequests.executor)
        call.task = Task(executorPreference: asyncRequests.executor) {
            var failure: (any Error)? = nil
            let response: HTTPResponse
            do { response = try await work() } catch {
                failure = error
                response = .errorResponse(status: 500)
            }
            // Back on the loop executor (the task's preference): the worker's thread.
            let (worker, call, conn) = owner.value
            worker.asyncEnded(call, on: conn, response: response, failure: failure)
        }
    }

    /// A task ended (on the loop thread): answer its connection if it still waits for it, then
    /// give its place to a waiting call.
    private func asyncEnded(_ call: AsyncCall, on conn: Connection, response: HTTPResponse, failure: (any Error)?) {
        asyncRequests.running -= 1
        scoreboard.store(slot, .asyncInFlight, UInt64(asyncRequests.running))
        if call.state == .running && conn.asyncCall === call && !conn.closed {
            call.state = .done
            if let failure, !(failure is CancellationError) {
                log.error("async handler failed: \(failure)", metadata: ["event": "handler-error", "path": "\(call.request.path)"])
            }
            conn.finishAsync(response)
        } else {
            response.body.discard() // nobody to send it to: the client left or was answered already
        }
        startWaiting()
    }

    /// Starts waiting calls while there is room under the limit (skipping given-up ones).
    private func startWaiting() {
        var taken = 0
        while taken < asyncRequests.waiting.count && !asyncRequests.atLimit {
            let (call, conn) = asyncRequests.waiting[taken]
            taken += 1
            guard call.state == .waiting, conn.asyncCall === call, !conn.closed else { continue }
            launch(call, on: conn)
        }
        if taken > 0 { asyncRequests.waiting.removeFirst(taken) }
    }

    // MARK: - Giving up

    /// The connection closed with its request in flight (EOF or reset from the client, or our
    /// own close): cancel the task. Its place is freed when the task ends.
    func asyncAbandoned(_ call: AsyncCall) {
        cancel(call, counting: .asyncClientGone)
    }

    /// --async-timeout passed (checked by the connection's sweep, about once a second):
    /// cancel the task and answer 504. The response is queued only when the handler returns,
    /// so no part of it was sent yet: the connection stays usable.
    func asyncExpired(_ conn: Connection) {
        giveUp(conn, status: 504, counter: .asyncTimedOut)
    }

    /// Cancels the call on `conn` and answers `status` in its place.
    private func giveUp(_ conn: Connection, status: Int, counter: Scoreboard.Field) {
        guard let call = conn.asyncCall, cancel(call, counting: counter) else { return }
        conn.finishAsync(.errorResponse(status: status))
    }

    /// Gives the call up (a late result is dropped), counts it under `counter` and cancels its
    /// task if it started. False if it was done already.
    @discardableResult
    private func cancel(_ call: AsyncCall, counting counter: Scoreboard.Field) -> Bool {
        guard call.state != .done else { return false }
        let wasRunning = call.state == .running
        call.state = .done
        scoreboard.bump(slot, counter)
        if wasRunning { call.task?.cancel() }
        return true
    }

    /// Draining: at --graceful-timeout (less a margin to write the answers before the master's
    /// SIGKILL), cancel every request still in flight and answer 503. The worker then exits
    /// without waiting for the cancelled tasks to end.
    func cancelAsyncAtDrainDeadline() {
        guard draining, !asyncRequests.drainCancelled else { return }
        let grace = UInt64(config.gracefulTimeout * 1e9)
        let margin = min(1_000_000_000, grace / 4)
        guard now &- asyncRequests.drainStartedAt >= grace - margin else { return }
        // Produced bodies (StreamedBody) still going, e.g. server-sent events: cut them (their
        // producers are cancelled) so the worker can exit before the master's SIGKILL.
        for case let c? in connections where c.producesBody { c.abandonProducedBody() }
        guard asyncRequests.pending > 0 else { return }
        asyncRequests.drainCancelled = true
        log.warning("\(asyncRequests.pending) async requests still in flight at the graceful timeout; cancelled", metadata: ["event": "async-drain-cancel"])
        for case let c? in connections where c.asyncCall != nil {
            giveUp(c, status: 503, counter: .asyncDrainCancelled)
        }
        asyncRequests.waiting.removeAll()
    }

    /// Whether a draining worker must stay for its async requests.
    var asyncHoldsDrain: Bool { asyncRequests.running > 0 && !asyncRequests.drainCancelled }
}
