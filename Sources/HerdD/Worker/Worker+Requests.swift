import HerdLibc
import Handlers
import HerdSys
import Logging

/// A worker's requests: the handler's context, running the handler (blocking or async, with
/// the dispatch watcher around a blocking one), and what is counted and logged per response.
extension Worker {
    // MARK: - Requests

    func handlerContext(_ conn: Connection) -> HandlerContext {
        HandlerContext(listenerName: listeners[conn.listener].name, workerID: slot, pid: pid, peerAddress: conn.peer)
    }

    /// Runs the listener's handler, once per request. `readyAt`: when the request became
    /// readable (or its connection was accepted or handed over), for the queue-time histogram.
    /// Nil: the handler answers asynchronously; the connection waits for `finishAsync`
    /// (AsyncRequests.swift).
    func handle(_ request: HTTPRequest, on conn: Connection, readyAt: UInt64) -> HTTPResponse? {
        let queueMicros = turnClock > readyAt ? (turnClock - readyAt) / 1000 : 0
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
        if let asyncHandler = asyncRequests.handlers[conn.listener] {
            context.requestBody = conn.bodyIn // a body that streams in (Connection+BodyIn.swift)
            outcome = asyncHandler.respond(to: request, context: context)
        } else {
            outcome = .response(listeners[conn.listener].handler.handle(request, context: context))
        }
        let blocked = mayBlock && (!perRequest || blockingGate.opened)
        if blocked { blockingHandlersRun &+= 1 }
        if blocked, let watched { finishHandOffs(watched) }
        scoreboard.store(slot, .state, workerState.rawValue)
        switch outcome {
        case .response(let response):
            scoreboard.observeQueue(slot, listener: conn.listener, micros: queueMicros)
            return response
        case .async(let work):
            startAsync(request, work: work, on: conn, readyAt: readyAt)
            return nil
        }
    }

    /// Bookkeeping after a response was queued.
    func responded(status: Int) {
        scoreboard.bump(slot, .requests)
        let cls = min(max(status / 100, 1), 5)
        scoreboard.bump(slot, Scoreboard.Field(rawValue: Scoreboard.Field.status1xx.rawValue + cls - 1) ?? .status5xx)
        requestsServed += 1
        if requestsServed >= requestLimit && !draining {
            log.info("served \(requestsServed) requests (max-requests); recycling", metadata: ["event": "max-requests"])
            beginDrain(reason: .maxRequests)
        }
    }

    /// Latency histogram and optional access log, after the response was queued.
    func requestFinished(_ request: HTTPRequest, status: Int, on conn: Connection, startedAt: UInt64) {
        let end = monotonicNanos()
        turnClock = end
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

    /// --header-timeout, --body-timeout, --body-min-rate and --keepalive-timeout (read by the
    /// connections' sweep).
    var requestTimeouts: RequestTimeouts {
        RequestTimeouts(headerNanos: UInt64(config.headerTimeout * 1e9), bodyNanos: UInt64(config.bodyTimeout * 1e9),
                        bodyMinRate: UInt64(config.bodyMinRate))
    }
    var keepAliveTimeoutNanos: UInt64 { UInt64(config.keepAliveTimeout * 1e9) }

    var httpDate: String {
        let t = wallClockSeconds()
        if t != dateSecond {
            dateSecond = t
            dateText = HTTPDate.format(epochSeconds: t)
        }
        return dateText
    }
}
