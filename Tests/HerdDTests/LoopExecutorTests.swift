import Dispatch
import Glibc
import Testing
@testable import HerdD
import HerdSys

/// Written only by jobs that run on the loop thread (the test's thread): no lock needed.
private final class Recorder: @unchecked Sendable {
    var items: [Int] = []
}

/// The worker's loop executor on the test's thread, which plays the event loop: jobs enqueued
/// by that thread wait in the local queue until `runJobs`; jobs from other threads wake it
/// through the eventfd, once per batch; both run in their order.
@Suite struct LoopExecutorTests {
    /// Waits up to `millis` for the eventfd to be readable.
    private func woken(_ ex: LoopExecutor, millis: Int32) -> Bool {
        var p = pollfd(fd: ex.wakeFD, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, millis) == 1
    }

    /// The eventfd's counter (reads it, resetting it to 0): how many wake-ups were written.
    private func wakeCount(_ ex: LoopExecutor) -> UInt64 {
        var v: UInt64 = 0
        let n = withUnsafeMutableBytes(of: &v) { read(ex.wakeFD, $0.baseAddress, 8) }
        return n == 8 ? v : 0
    }

    @Test func jobsFromTheLoopThreadRunInOrderOnlyWhenTheLoopRunsThem() throws {
        let ex = try LoopExecutor()
        let rec = Recorder()
        for i in 1...5 { Task(executorPreference: ex) { rec.items.append(i) } }
        // Queued locally: nothing ran yet, and no wake-up was written (the loop knows).
        #expect(rec.items.isEmpty)
        #expect(ex.hasLocalJobs)
        #expect(!woken(ex, millis: 0))
        #expect(ex.runJobs(woken: false) == 5)
        #expect(rec.items == [1, 2, 3, 4, 5])
        #expect(!ex.hasLocalJobs)
    }

    @Test func jobsFromAnotherThreadWakeTheLoopOnceAndRunInOrder() throws {
        let ex = try LoopExecutor()
        let rec = Recorder()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            // Another thread: each task's first job goes to the remote queue.
            for i in 1...5 { Task(executorPreference: ex) { rec.items.append(i) } }
            done.signal()
        }
        done.wait()
        #expect(!ex.hasLocalJobs)
        #expect(woken(ex, millis: 2000))
        #expect(rec.items.isEmpty)
        // Only the job that made the queue non-empty wrote the eventfd.
        #expect(wakeCount(ex) == 1)
        #expect(ex.runJobs(woken: true) == 5)
        #expect(rec.items == [1, 2, 3, 4, 5])
    }

    @Test func aSleepResumesThroughTheWakeUpOnTheLoopThread() throws {
        let ex = try LoopExecutor()
        let rec = Recorder()
        let loop = pthread_self()
        Task(executorPreference: ex) {
            rec.items.append(pthread_equal(pthread_self(), loop) != 0 ? 1 : -1)
            try? await Task.sleep(for: .milliseconds(20))
            // The timer fires on another thread; the rest of the task runs on the loop again.
            rec.items.append(pthread_equal(pthread_self(), loop) != 0 ? 2 : -2)
        }
        // Before the task's first step, which starts its sleep: taken after, the time the test
        // thread lost between the two (under load, 11 ms in one run) was missing from the wait.
        let start = monotonicNanos()
        #expect(ex.runJobs(woken: false) == 1)
        #expect(rec.items == [1])
        var waited = 0
        while rec.items.count < 2 && waited < 100 {
            let w = woken(ex, millis: 50)
            ex.runJobs(woken: w)
            waited += 1
        }
        #expect(rec.items == [1, 2])
        // The task resumed only once its 20 ms were over.
        #expect(monotonicNanos() - start >= 20_000_000)
    }

    @Test func aTaskThatKeepsYieldingDoesNotHoldTheLoop() throws {
        let ex = try LoopExecutor()
        let rec = Recorder()
        Task(executorPreference: ex) {
            for i in 0..<100 {
                rec.items.append(i)
                await Task.yield()
            }
        }
        ex.runJobs(woken: false)
        // At most one step of the task per round, at most maxRounds rounds per call: the loop
        // gets back to its sockets long before the task is done.
        #expect(rec.items.count >= 1 && rec.items.count <= LoopExecutor.maxRounds)
        var calls = 1
        while rec.items.count < 100 && calls < 1000 {
            ex.runJobs(woken: woken(ex, millis: ex.hasLocalJobs ? 0 : 50))
            calls += 1
        }
        #expect(calls > 100 / LoopExecutor.maxRounds)
        #expect(rec.items == Array(0..<100))
    }

    @Test func loopBoundValuesAreReadOnTheLoopThread() throws {
        let ex = try LoopExecutor()
        let box = LoopBound(41, on: ex)
        #expect(ex.onLoopThread)
        #expect(box.value + 1 == 42)
        let other = DispatchSemaphore(value: 0)
        let result = Recorder()
        DispatchQueue.global().async {
            result.items.append(ex.onLoopThread ? 1 : 0)
            other.signal()
        }
        other.wait()
        #expect(result.items == [0])
    }
}
