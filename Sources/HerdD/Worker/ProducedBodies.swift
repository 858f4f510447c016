import Handlers

/// Response bodies with a producer (StreamedBody, docs/async.md "Streamed response bodies"):
/// the producer runs as a task on the loop executor; when it writes after the connection found
/// nothing to send, its wake-up puts the connection on `producersWoken`, which the loop serves
/// after it ran the executor's jobs, in the same turn.
extension Worker {
    func startProducer(_ body: any ProducedBodyStream, for conn: Connection) {
        let executor = asyncRequests.executor
        let target = LoopBound((self, conn), on: executor)
        body.start(on: executor) {
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
