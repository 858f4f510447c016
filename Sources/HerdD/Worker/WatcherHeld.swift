import HerdSys

/// --max-queue-time: connections a busy worker's watcher accepted while the limit was being
/// hit, whose request had not come yet (docs/overload.md, "Who answers while every worker is
/// blocked").
///
/// Such a connection can be neither answered (a 503 before the request would make the
/// request's arrival reset the connection) nor judged (`admits` is about a request that is
/// there now). Put on the dispatch queue past the admission, it was often shed there after
/// waiting out the limit: in the bench's sleep mix at twice its capacity, a client that
/// connects and then writes (every client) found the watcher accepting in between about 2,600
/// times in 10 s, and the late sheds that followed put the p99 of the 503s above the limit.
/// So the watcher holds it in its own epoll (edge-triggered, like the connections it watches)
/// until its first bytes come, a tick later at most, and then decides as for a request that
/// arrives: to the queue if admitted, else 503 at once. Its queue time counts from then (its
/// request was not there before). Held connections are the event loop's again when the
/// handler ends (`releaseHeld`, from `stop()`), like the ones it kept.
extension Watcher {
    /// At most this many held at once; beyond, a connection joins the queue as before.
    static let maxHeld = 256

    /// Under mutex, active: holds `fd` until its request comes. False if it cannot (too many
    /// held, or the epoll refused it).
    func hold(_ fd: Int32, listener: Int) -> Bool {
        guard held.count < Watcher.maxHeld else { return false }
        // EPOLL_CTL_ADD reports bytes that came since the peek, so none are missed.
        do { try epoll.add(fd, [.input, .edgeTriggered], .connection(fd), what: "held connection") } catch { return false }
        held.append((fd, listener))
        return true
    }

    /// Under mutex, active: held connection `i` turned readable (or closed): admitted to the
    /// queue, else answered (or held again on a stale edge).
    func takeHeld(_ i: Int, now: UInt64, _ cfg: WatcherShedConfig) {
        held.swapAt(i, held.count - 1)
        let h = held.removeLast()
        unwatchHeld(h.fd)
        if admits(now: now, cfg), Sys.hasInput(h.fd), dispatch.send(h.fd, listener: h.listener, readyAt: now) == 0 {
            Sys.close(h.fd)
            report.queued.append(h.listener)
            return
        }
        answerTaken(h.fd, listener: h.listener, readyAt: now, now: now, accepted: true)
    }

    /// Under mutex, from `stop()`: the held connections become the event loop's.
    func releaseHeld() {
        for h in held {
            unwatchHeld(h.fd)
            // No request yet: its wait starts when it comes (readyAt 0: the turn that reads it),
            // not now; a client that writes long after connecting must not be shed for it.
            report.kept.append((h.fd, h.listener, 0, false))
        }
        held.removeAll(keepingCapacity: true)
    }

    private func unwatchHeld(_ fd: Int32) {
        // Out of our epoll before it is queued, answered or registered again (as a kept one).
        do { try epoll.remove(fd, what: "held connection") } catch {
            log.error("\(error)", metadata: ["event": "dispatch-error"])
        }
    }
}
