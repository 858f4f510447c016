import HerdLibc
import Handlers
import HerdSys
import Logging

/// A worker's requests: the handler's context, running the handler (blocking or async, with
/// the dispatch watcher around a blocking one), and what is counted and logged per response.
extension Worker {
    // MARK: - Requests

    func handlerContext(_ conn: Connection) -> HandlerContext {
        var context = HandlerContext(listenerName: listeners[conn.listener].name, workerID: slot, pid: pid, peerAddress: conn.peer)
        context.recentNanos = dispatchState.lastHandlerEnd
        return context
    }

    /// Runs the listener's handler, once per request, unless --max-queue-time refuses the
    /// request first (Shedding.swift). `.pending`: the handler answers asynchronously; the
    /// connection waits for `finishAsync` (AsyncRequests.swift).
    func handle(_ request: HTTPRequest, on conn: Connection) -> HostAnswer {
        // When the request became readable (or its connection was accepted or handed over):
        // the queue-time histogram and the shedding verdict.
        let readyAt = dispatchState.takeReadyAt(conn.fd, turnStart: now)
        if let refusal = shedResponse(request, on: conn, readyAt: readyAt) { return .refused(refusal) }
        let queueMicros = dispatchState.queueMicros(readyAt: readyAt)
        scoreboard.store(slot, .state, Scoreboard.State.busy.rawValue)
        // A handler that may block: let the watcher pass our other connections that turn
        // readable meanwhile to idle workers (Watcher.swift). Not while draining: then we close
        // keep-alive connections anyway, and the dispatch queue must empty before we exit.
        let mayBlock = listenerMayBlock[conn.listener]
        let watched = mayBlock && !draining ? watcher : nil
        var context = handlerContext(conn)
        // A handler that decides per request (the Herd router: per-route mayBlock) opens the
        // gate itself before blocking work; a route that does not block then skips the watcher.
        let perRequest = mayBlock && listenerDecidesPerRequest[conn.listener]
        if perRequest {
            blockingGate.arm(fd: watched != nil ? conn.fd : -1)
            context.blockingGate = blockingGate
        } else {
            watched?.start(busy: conn.fd)
        }
        // An async handler decides here, in the same call, whether the request is async.
        let outcome: HandlerOutcome
        if asyncRequests.isAsync[conn.listener], let asyncHandler = asyncRequests.handlers[conn.listener] {
            context.requestBody = conn.bodyIn // a body that streams in (Connection+BodyIn.swift)
            outcome = asyncHandler.respond(to: request, context: context)
        } else {
            outcome = .response(listenerHandlers[conn.listener].handle(request, context: context))
        }
        let blocked = mayBlock && (!perRequest || blockingGate.opened)
        if blocked {
            blockingHandlersRun &+= 1
            quietRequests = 0
            if let watched { finishHandOffs(watched) }
        } else if let watched {
            // A request of a blocking listener that blocked nothing: after `parkAfter` in a
            // row, the watcher (woken by each for nothing) is asked to park.
            quietRequests &+= 1
            if quietRequests == Watcher.parkAfter { watched.requestPark() }
        }
        scoreboard.store(slot, .state, workerState.rawValue)
        switch outcome {
        case .response(let response):
            scoreboard.observeQueue(slot, listener: conn.listener, micros: queueMicros)
            return .response(response)
        case .async(let work):
            startAsync(request, work: work, on: conn, readyAt: readyAt)
            return .pending
        }
    }

    /// Bookkeeping after a response was queued: the counters (and max-requests); for a
    /// handler's response, the latency histogram and the access log (`requestFinished`).
    func responded(status: Int, to request: HTTPRequest?, startedAt: UInt64, on conn: Connection) {
        scoreboard.bump(slot, .requests)
        let cls = min(max(status / 100, 1), 5)
        scoreboard.bump(slot, Scoreboard.Field(rawValue: Scoreboard.Field.status1xx.rawValue + cls - 1) ?? .status5xx)
        requestsServed += 1
        if requestsServed >= requestLimit && !draining {
            log.info("served \(requestsServed) requests (max-requests); recycling", metadata: ["event": "max-requests"])
            beginDrain(reason: .maxRequests)
        }
        if let request { requestFinished(request, status: status, on: conn, startedAt: startedAt) }
    }

    /// Latency histogram and optional access log, after the response was queued.
    private func requestFinished(_ request: HTTPRequest, status: Int, on conn: Connection, startedAt: UInt64) {
        let end = monotonicNanos()
        dispatchState.handlerEnded(at: end)
        let micros = end > startedAt ? (end - startedAt) / 1000 : 0
        scoreboard.observeLatency(slot, listener: conn.listener, micros: micros)
        guard config.accessLog else { return }
        // At most 100 entries per second per worker; the rest are counted and reported.
        let second = end / 1_000_000_000
        if second != accessLogSecond {
            if accessLogDropped > 0 {
                log.warning("access log: \(accessLogDropped) entries dropped (rate limit 100/s)", metadata: ["event": "access-log-dropped", "dropped": "\(accessLogDropped)"])
            }
            accessLogSecond = second
            accessLogCount = 0
            accessLogDropped = 0
        }
        accessLogCount += 1
        if accessLogCount > 100 { accessLogDropped += 1; return }
        log.info("\(request.method) \(request.target) \(status)", metadata: [
            "event": "access", "method": "\(request.method)", "path": "\(request.path)", "status": "\(status)",
            "duration_us": "\(micros)", "peer": "\(conn.peer)", "listener": "\(listeners[conn.listener].name)",
        ])
    }

    func countBytesOut(_ n: Int) { scoreboard.bump(slot, .bytesOut, by: UInt64(n)) }

    /// Whether the response being queued may keep the connection open: not while draining,
    /// and not for the response that reaches max-requests (it says `Connection: close`, so its
    /// client reconnects instead of sending into a connection we are about to close).
    var keepAliveAllowed: Bool { !draining && requestsServed + 1 < requestLimit }

    var httpDate: String {
        let t = wallClockSeconds()
        if t != dateSecond {
            dateSecond = t
            dateText = HTTPDate.format(epochSeconds: t)
        }
        return dateText
    }
}
