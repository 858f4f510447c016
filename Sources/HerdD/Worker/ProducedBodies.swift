import Handlers

/// Response bodies with a producer (StreamedBody, docs/async.md "Streamed response bodies"):
/// the producer runs as a task on the loop executor; when it writes after the connection found
/// nothing to send, its wake-up puts the connection on `producersWoken`, which the loop serves
/// after it ran the executor's jobs, in the same turn.
///
/// Streamed request bodies (Connection+BodyIn.swift) use the same wake-up: their reader's
/// take after the connection paused puts it on `producersWoken` (it then reads on).
extension Worker {
    func startProducer(_ body: any ProducedBodyStream, for conn: Connection) {
        body.start(on: asyncRequests.executor, wake: wakeOnLoop(conn))
    }

    /// The async handler of the listener decides (`streamsBody(of:)`); its reader's room wakes
    /// the connection through the loop, like a producer's write.
    func bodyStream(for head: HTTPRequest, on conn: Connection) -> RequestBodyStream? {
        guard asyncRequests.handlers[conn.listener]?.streamsBody(of: head) ?? false else { return nil }
        let body = RequestBodyStream()
        body.onRoom(wakeOnLoop(conn))
        return body
    }

    /// A wake-up, callable from any thread, that has the loop call `conn.producerWoke()`.
    private func wakeOnLoop(_ conn: Connection) -> @Sendable () -> Void {
        let executor = asyncRequests.executor
        let target = LoopBound((self, conn), on: executor)
        return {
            if executor.onLoopThread {
                // The usual case: the producer's task runs on the loop, inside runJobs.
                let (worker, conn) = target.value
                worker.producersWoken.append(conn)
            } else {
                // A producer on another thread (a task without the loop's executor preference,
                // a client library's thread): hop to the loop as a job, woken through its eventfd.
                Task(executorPreference: executor) {
                    let (worker, conn) = target.value
                    worker.producersWoken.append(conn)
                }
            }
        }
    }

    /// The loop, after the executor's jobs: connections whose producer wrote or ended resume
    /// writing.
    func resumeWokenProducers() {
        var woken: [Connection] = []
        swap(&woken, &producersWoken)
        for conn in woken { conn.producerWoke() }
    }
}
