import HerdSys

/// A worker's event loop as a Swift concurrency executor: the `TaskExecutor` its async requests
/// run on (`Task(executorPreference:)`, AsyncRequests.swift), as SwiftNIO's EventLoop is one.
///
/// Jobs are run by the loop thread, between its epoll turns (`runJobs`): a request's task
/// starts, awaits and finishes on the thread that owns its connection, so the response is
/// queued on the connection with no thread hop and no lock.
/// - `enqueue` from the loop thread itself (a task created by a request, a continuation resumed
///   by loop code, the first job of every task) appends to `local`: a plain array, no lock.
/// - `enqueue` from any other thread (the global executor's timer thread that ends a
///   `Task.sleep`, a client library's own I/O thread resuming a continuation) appends to
///   `remote` under a mutex and, if that queue was empty, writes the eventfd `wakeFD`, which the
///   worker's epoll waits on (tag `.executor`): the loop wakes even if it sleeps in epoll_wait.
///   One write per batch: jobs that come while the loop has not yet taken the queue ride along.
///
/// Swift 6.3 has no scheduling executor on Linux, so `Task.sleep` timers run on the global
/// executor's timer and come back here as remote jobs (measured: 64 tasks looping a 20 ms sleep
/// did 3,050 wake-ups/s of a possible 3,200 on one loop thread, 0.11 s of CPU in 3 s).
final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    /// The eventfd other threads write to wake the loop (non-blocking, in the worker's epoll).
    let wakeFD: Int32
    /// The thread that runs the jobs (the one that created the executor: the worker's loop).
    private let loopThread: ThreadIdentity
    /// Jobs enqueued by the loop thread. Touched by the loop thread only: no lock.
    private var local: [UnownedJob] = []
    /// Jobs enqueued by other threads, guarded by `mutex`. A pthread mutex rather than
    /// Synchronization's `Mutex`: ThreadSanitizer sees its ordering (it intercepts pthread), so a
    /// `--sanitize=thread` build checks this hand-over instead of reporting the futex-based lock
    /// of the (uninstrumented) standard library as a race.
    private var remote: [UnownedJob] = []
    private let mutex: ThreadMutex
    /// The batch being run (kept to reuse its storage).
    private var batch: [UnownedJob] = []
    /// Rounds of `local` one `runJobs` call runs at most: jobs that keep enqueueing jobs
    /// (`Task.yield()` in a loop) must not keep the loop from its sockets and its heartbeat.
    static let maxRounds = 16

    /// Jobs run so far (tests and the worker's bookkeeping).
    private(set) var jobsRun = 0

    init() throws(SysError) {
        wakeFD = try Sys.eventFD(what: "loop executor")
        do { mutex = try ThreadMutex(what: "loop executor") } catch {
            Sys.close(wakeFD)
            throw error
        }
        loopThread = .current
        local.reserveCapacity(64)
        batch.reserveCapacity(64)
    }

    deinit {
        Sys.close(wakeFD)
    }

    /// Whether the caller is the loop thread (the one allowed to touch the worker's state).
    var onLoopThread: Bool { loopThread.isCurrent }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if onLoopThread {
            local.append(unowned)
            return
        }
        mutex.lock()
        remote.append(unowned)
        let first = remote.count == 1
        mutex.unlock()
        // Only the job that made the queue non-empty writes: the loop takes the whole queue
        // after it reads the eventfd, so later jobs of the same batch are seen without a write.
        if first { Sys.signalEventFD(wakeFD) }
    }

    /// Jobs wait that the loop thread enqueued (the loop must not sleep in epoll_wait).
    var hasLocalJobs: Bool { !local.isEmpty }

    /// Loop thread: runs what is queued. `woken`: the eventfd was reported readable this turn,
    /// so other threads have queued jobs (the eventfd is read first, then the queue taken: a
    /// job queued after the take writes the eventfd again). Runs jobs those jobs enqueue, up to
    /// `maxRounds` rounds. Returns how many jobs ran.
    @discardableResult
    func runJobs(woken: Bool) -> Int {
        var ran = 0
        if woken {
            Sys.drainEventFD(wakeFD)
            mutex.lock()
            swap(&remote, &batch)
            mutex.unlock()
            ran += runBatch()
        }
        var rounds = 0
        while !local.isEmpty && rounds < LoopExecutor.maxRounds {
            swap(&local, &batch)
            ran += runBatch()
            rounds += 1
        }
        jobsRun &+= ran
        return ran
    }

    private func runBatch() -> Int {
        let n = batch.count
        let me = asUnownedTaskExecutor()
        for job in batch { job.runSynchronously(on: me) }
        batch.removeAll(keepingCapacity: true)
        return n
    }
}

/// A value that may cross into a task only because that task runs on the loop executor, on
/// the loop thread that owns the value (a worker, a connection): the compiler cannot see that a
/// task with an executor preference runs its nonisolated code there, so it is asserted instead.
struct LoopBound<Value>: @unchecked Sendable {
    private let wrapped: Value
    private let executor: LoopExecutor

    init(_ value: Value, on executor: LoopExecutor) {
        wrapped = value
        self.executor = executor
    }

    /// The value; only on the loop thread (checked in debug builds).
    var value: Value {
        assert(executor.onLoopThread, "loop-bound value used off the loop thread")
        return wrapped
    }
}
