import CHerdSys
import Glibc
import Handlers
import Logging

/// The master: owns the listening sockets and the scoreboard, never accepts. It spawns the
/// workers, reaps and replaces them, kills hung ones, resizes the pool, reloads, and stops.
/// Single-threaded: one epoll with a signalfd; housekeeping runs on a 100 ms tick.
final class Master {
    struct WorkerProc {
        var pid: pid_t
        var slot: Int
        var generation: UInt64
        var spawnedAt: UInt64
        /// Set when the master asked it to leave (reload, TTOU, stop) and why.
        var retireReason: String? = nil
        /// Set when the master SIGKILLed it and why (timeout, graceful timeout).
        var killReason: String? = nil
    }

    enum Stop { case graceful(deadline: UInt64), immediate(deadline: UInt64) }

    var config: ServerConfig
    let configPath: String?
    let overrides: [(String, String)]
    /// Every listening socket (kept for a hot upgrade), the ones workers serve, and the ones the
    /// master serves itself (handler `metrics`).
    let allListeners: [Listener]
    let listeners: [Listener]
    let metricsListeners: [Listener]
    var metricsServer: MetricsServer? = nil
    var upgrades: UInt64 = 0
    /// Hot upgrade in progress (old-master side), handover not yet committed by the old master
    /// (new-master side; we say nothing to systemd meanwhile), and whether we handed the service
    /// over (then we stop without STOPPING=1).
    var upgrade: UpgradeState? = nil
    var handover: UpgradeHandover? = nil
    var handedOver = false
    /// New-master side after the commit: the old master, until it closes the socket (its final
    /// totals come that way). Old-master side: our end of the socket to the new master.
    var predecessor: UpgradeHandover? = nil
    var successorFD: Int32 = -1
    /// Counters handed over by the master we replaced (added to ours in every snapshot).
    var inherited = CarriedTotals()
    let executablePath: String
    let scoreboard: Scoreboard
    /// The dispatch socketpair (Worker/Dispatch.swift), passed to every worker of this master.
    let dispatch: DispatchPair
    var log = Logger(label: "herdd.master")
    let workerEnv: [String]
    let workerExe = "/proc/self/exe"

    var epfd: Int32 = -1
    var sigfd: Int32 = -1

    var generation: UInt64 = 1
    var wanted: Int
    var workers: [pid_t: WorkerProc] = [:]
    /// Slots waiting for a (re)spawn and when it is due (crash backoff).
    var pendingSpawns: [Int: UInt64] = [:]
    var fastDeaths: [Int: Int] = [:]
    var readySent = false
    var reloading = false
    var rollback: Rollback? = nil
    var stop: Stop? = nil
    var exitCode: Int32 = 0
    var lastStatus = ""
    var lastStatusAt: UInt64 = 0
    var lastPoolAdjust: UInt64 = 0
    var watchdogUsec: UInt64? = SystemdNotify.watchdogInterval()
    var lastWatchdogAt: UInt64 = 0

    /// Counters of workers that have exited, so totals survive restarts.
    var retired = RetiredTotals()
    /// Accept-queue sampling (every tick): peak over the last minute and time at or above the
    /// alarm threshold, and the alarm state (above the threshold since when, warned or not).
    var backlogWindows: [BacklogWindow] = []
    /// Set when a graceful stop closed the listeners herdd bound itself (their fds are gone).
    var listenersClosed = false
    /// NETLINK_SOCK_DIAG socket for unix listeners' queues (opened on first use).
    var sockDiagFD: Int32 = -1
    var backlogAboveSince: [UInt64?] = []
    var backlogAlarmed: [Bool] = []
    var restarts: [String: UInt64] = [:]

    struct RetiredTotals {
        var accepted: UInt64 = 0
        var requests: UInt64 = 0
        var statusClasses = [UInt64](repeating: 0, count: 5)
        var bytesOut: UInt64 = 0
        var listeners: [[UInt64]] = [] // per listener: Scoreboard.listenerCounters
        var dispatchWakeups: UInt64 = 0
        var dispatchEmptyWakeups: UInt64 = 0
    }

    /// Signals the master reads from its signalfd.
    static let handledSignals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2]
    static let fastDeathNanos: UInt64 = 1_000_000_000
    static let crashLoopThreshold = 5

    init(config: ServerConfig, configPath: String?, overrides: [(String, String)], listeners: [Listener],
         executablePath: String, handover: UpgradeHandover?) throws {
        // Block the signals run() reads from its signalfd now: one that arrives while we set up
        // stays pending for the loop instead of killing the master half-way (default action).
        var early = sigset_t()
        herd_sigset_empty(&early)
        for sig in Master.handledSignals { herd_sigset_add(&early, sig) }
        let rc = pthread_sigmask(SIG_BLOCK, &early, nil)
        if rc != 0 { throw SysError("pthread_sigmask", errno: rc, detail: "SIG_BLOCK") }
        self.config = config
        self.executablePath = executablePath
        self.handover = handover
        self.configPath = configPath
        self.overrides = overrides
        self.wanted = config.workers
        self.generation = handover?.generation ?? 1
        // Keep listener fds at Spawn.firstPrivateFD and above so the dup2 to 3, 4, ... in posix_spawn never overwrites
        // a source that has not been copied yet. F_DUPFD_CLOEXEC: only the spawn's dup2 makes
        // them inheritable.
        var moved: [Listener] = []
        for var l in listeners {
            // Ours alone: bound by us and not in systemd's fd store, or (after an upgrade) the
            // old master's own sockets.
            l.owned = handover.map { $0.ownedListeners.contains(l.name) } ?? (l.owned && !SystemdNotify.hasNotifySocket)
            let high = try sys("fcntl", detail: "F_DUPFD_CLOEXEC \(l.name)") { fcntl(l.fd, F_DUPFD_CLOEXEC, Spawn.firstPrivateFD) }
            close(l.fd)
            l.fd = high
            moved.append(l)
        }
        // TCP_NODELAY once on each TCP listener: accepted sockets inherit it on Linux, which
        // saves workers a setsockopt per connection. Responses go out in one write; Nagle
        // would only hold back the tail of pipelined or streamed responses.
        for l in moved where l.family == .tcp {
            var one: Int32 = 1
            try sys("setsockopt", detail: "TCP_NODELAY \(l.name)") {
                setsockopt(l.fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        self.allListeners = moved
        self.listeners = moved.filter { config.handlerSpec(for: $0.name) != metricsHandlerName }
        self.metricsListeners = moved.filter { config.handlerSpec(for: $0.name) == metricsHandlerName }
        // Twice the hard limit: during a rolling reload old and new workers overlap.
        let runtimeDir = getenv("RUNTIME_DIRECTORY").map { String(cString: $0).split(separator: ":").first.map(String.init) ?? "" }
        self.scoreboard = try Scoreboard(creatingSlots: ServerConfig.workerLimit * 2, masterPID: getpid(),
                                         publishDirectory: runtimeDir?.isEmpty == false ? runtimeDir : nil,
                                         publishNow: handover == nil)
        self.dispatch = try DispatchPair()
        self.backlogWindows = Array(repeating: BacklogWindow(), count: self.listeners.count)
        self.backlogAboveSince = Array(repeating: nil, count: self.listeners.count)
        self.backlogAlarmed = Array(repeating: false, count: self.listeners.count)
        self.retired.listeners = Array(repeating: [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount), count: self.listeners.count)
        self.workerEnv = Spawn.environment(removing: [
            "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
        ])
    }

    // MARK: - Main loop

    func run() throws -> Int32 {
        ProcessTitle.set("herdd: master")
        signal(SIGPIPE, SIG_IGN)
        if handover != nil {
            // A USR2 that `systemctl kill` fanned out to the whole unit may be pending (blocked
            // since our spawn): it was meant for the old master. Setting SIG_IGN discards it.
            signal(SIGUSR2, SIG_IGN)
            signal(SIGUSR2, SIG_DFL)
        }
        sigfd = try makeSignalFD(Master.handledSignals)
        epfd = try sys("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        try sys("epoll_ctl", detail: "signalfd") { herd_epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, herd_epollin(), 0) }
        if let h = handover {
            // Metrics wait for the commit: until then the old master answers them.
            try sys("epoll_ctl", detail: "upgrade socket") { herd_epoll_ctl(epfd, EPOLL_CTL_ADD, h.fd, herd_epollin() | herd_epollrdhup(), upgradeHandoverTag) }
        } else if !metricsListeners.isEmpty {
            metricsServer = try MetricsServer(listeners: metricsListeners, epfd: epfd)
        }

        log.info("herdd \(herddVersionString) master starting", metadata: [
            "event": "start", "version": "\(herddVersionString)", "workers": "\(wanted)",
            "listeners": "\(allListeners.map { "\($0.name)=\($0.address)" }.joined(separator: " "))",
            "accept_mode": "\(config.acceptMode.rawValue)",
        ])
        SystemdNotify.status("starting \(wanted) workers")
        tick()

        var events = [herd_event](repeating: herd_event(), count: 16)
        while true {
            // 100 ms housekeeping tick; 5 ms while workers start, so READY=1 follows the last
            // worker's readiness closely (start to READY=1 is part of what we measure).
            let tickMillis: Int32 = (!readySent || reloading || workers.values.contains { scoreboard.state($0.slot) == .starting }) ? 5 : 100
            let n = events.withUnsafeMutableBufferPointer { herd_epoll_wait(epfd, $0.baseAddress, 16, tickMillis) }
            if n < 0 && errno != EINTR { throw SysError("epoll_wait", detail: "master") }
            for i in 0..<max(0, Int(n)) {
                let data = events[i].data
                if data == 0 { drainSignals() }
                else if data == upgradePipeTag { upgradePipeEvent() }
                else if data == upgradeHandoverTag { handoverEvent() }
                else { metricsServer?.event(data, respond: metricsResponse) }
            }
            tick()
            if stop != nil && workers.isEmpty && (upgrade == nil || handedOver) { break }
        }
        sendFinalTotals()
        scoreboard.unpublish(masterPID: getpid())
        let reason = exitCode == 0 ? "stopped" : "failed"
        log.info("herdd master exiting", metadata: ["event": "exit", "reason": "\(reason)", "exit_code": "\(exitCode)"])
        return exitCode
    }

    private func drainSignals() {
        while let sig = readSignal(sigfd) {
            switch sig {
            case SIGCHLD: reap()
            case SIGTERM, SIGINT:
                if case .graceful = stop, sig == SIGINT { beginStop(immediate: true) } else { beginStop(immediate: false) }
            case SIGQUIT: beginStop(immediate: true)
            case SIGHUP: beginReload()
            case SIGTTIN: resize(by: 1)
            case SIGTTOU: resize(by: -1)
            case SIGUSR2: beginUpgrade()
            default: break
            }
        }
    }

    // MARK: - Housekeeping

    private func tick() {
        let now = monotonicNanos()
        metricsServer?.sweep(now: now)
        checkUpgradeDeadline(now)
        sampleBacklog(now)
        if let stop {
            switch stop {
            case .graceful(let deadline), .immediate(let deadline):
                if now >= deadline { killAll(reason: "graceful-timeout") }
            }
            updateStatus(now)
            return
        }
        checkHeartbeats(now)
        adjustDynamicPool(now)
        balancePool(now)
        if !readySent && currentReady() >= wanted {
            readySent = true
            let status = statusLine()
            if let h = handover {
                reportReadyToOldMaster(h)
            } else {
                SystemdNotify.ready(status: status)
            }
            lastStatus = status
            log.info("herdd ready", metadata: ["event": "ready", "workers": "\(wanted)", "generation": "\(generation)"])
        }
        if reloading && currentReady() >= wanted && oldGeneration().isEmpty {
            reloading = false
            rollback = nil
            SystemdNotify.ready(status: statusLine())
            scoreboard.setHeader(.generation, generation)
            scoreboard.publish(reload: .ok, message: "generation \(generation) serving with \(wanted) workers")
            log.info("reload complete", metadata: ["event": "reload-done", "generation": "\(generation)", "workers": "\(wanted)"])
        } else if reloading, let rb = rollback, fastDeaths.values.contains(where: { $0 >= 3 }) {
            abortReload(rb, why: "new workers die right after they start")
        }
        updateStatus(now)
        if let wd = watchdogUsec, now - lastWatchdogAt >= wd * 1000 / 2 {
            // Only the supervision loop pings, and only after it read the scoreboard this turn:
            // a master stuck anywhere else stops pinging and systemd kills it.
            if scoreboard.isIntact {
                SystemdNotify.watchdog()
                lastWatchdogAt = now
            }
        }
    }

    private func current() -> [WorkerProc] {
        workers.values.filter { $0.generation == generation && $0.retireReason == nil }
    }

    private func oldGeneration() -> [WorkerProc] {
        workers.values.filter { $0.generation < generation && $0.retireReason == nil }
    }

    private func currentReady() -> Int {
        current().filter {
            let s = scoreboard.state($0.slot)
            return s == .idle || s == .busy
        }.count
    }

    /// Spawns missing workers, retires surplus ones and, during a reload, rolls the pool one
    /// worker at a time: a new worker is serving before an old one is asked to drain.
    private func balancePool(_ now: UInt64) {
        let cur = current()
        let old = oldGeneration()
        let starting = cur.filter { scoreboard.state($0.slot) == .starting }.count
        let have = cur.count + pendingSpawns.count
        if have < wanted {
            let missing = old.isEmpty ? wanted - have : (starting == 0 && pendingSpawns.isEmpty ? 1 : 0)
            for _ in 0..<missing {
                guard let slot = freeSlot() else {
                    log.error("no free scoreboard slot", metadata: ["event": "spawn-failed"])
                    break
                }
                pendingSpawns[slot] = now
            }
        } else if cur.count > wanted {
            for w in cur.sorted(by: { $0.slot > $1.slot }).prefix(cur.count - wanted) { retire(w.pid, reason: "ttou") }
        }
        // Rolling reload: retire one old worker per new worker that is serving.
        if !old.isEmpty {
            let surplus = currentReady() + old.count - wanted
            if surplus > 0 {
                for w in old.sorted(by: { $0.slot < $1.slot }).prefix(surplus) { retire(w.pid, reason: "reload") }
            }
        }
        for (slot, due) in pendingSpawns where due <= now {
            pendingSpawns.removeValue(forKey: slot)
            spawnWorker(slot: slot)
        }
    }

    /// Apache-prefork-style spare workers: at most one step per second, never while workers are
    /// still starting or a reload rolls.
    private func adjustDynamicPool(_ now: UInt64) {
        guard config.minSpare > 0 || config.maxSpare > 0, !reloading, now - lastPoolAdjust >= 1_000_000_000 else { return }
        let cur = current()
        guard cur.count == wanted, !cur.contains(where: { scoreboard.state($0.slot) == .starting }) else { return }
        let idle = cur.filter { scoreboard.state($0.slot) == .idle }.count
        if config.minSpare > 0 && idle < config.minSpare && wanted < config.maxWorkers {
            wanted += 1
            lastPoolAdjust = now
            log.info("only \(idle) idle workers (min-spare \(config.minSpare)): growing to \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)", "reason": "min-spare"])
        } else if config.maxSpare > 0 && idle > config.maxSpare && wanted > config.workers {
            wanted -= 1
            lastPoolAdjust = now
            log.info("\(idle) idle workers (max-spare \(config.maxSpare)): shrinking to \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)", "reason": "max-spare"])
        }
    }

    private func freeSlot() -> Int? {
        let used = Set(workers.values.map(\.slot)).union(pendingSpawns.keys)
        return (0..<scoreboard.slotCount).first { !used.contains($0) }
    }

    private func spawnWorker(slot: Int) {
        scoreboard.reset(slot, generation: generation)
        if UInt64(slot + 1) > scoreboard.header(.slotHighWater) { scoreboard.setHeader(.slotHighWater, UInt64(slot + 1)) }
        var fds: [(Int32, Int32)] = []
        for (i, l) in listeners.enumerated() { fds.append((l.fd, 3 + Int32(i))) }
        let scoreboardFD = 3 + Int32(listeners.count)
        fds.append((scoreboard.fd, scoreboardFD))
        let dispatchFD = scoreboardFD + 1
        fds += [(dispatch.sendFD, dispatchFD), (dispatch.receiveFD, dispatchFD + 1)]
        let argv = ["herdd"] + WorkerRole.Arguments(
            slot: slot, generation: generation, masterPID: getpid(), scoreboardFD: scoreboardFD, dispatchFD: dispatchFD,
            listenerNames: listeners.map(\.name), settings: config.serialized()).commandLine
        do {
            let pid = try Spawn.start(path: workerExe, argv: argv, env: workerEnv, fds: fds)
            workers[pid] = WorkerProc(pid: pid, slot: slot, generation: generation, spawnedAt: monotonicNanos())
            log.info("worker spawned", metadata: [
                "event": "worker-spawned", "worker_pid": "\(pid)", "worker_id": "\(slot)", "generation": "\(generation)",
            ])
        } catch {
            log.error("cannot spawn worker: \(error)", metadata: ["event": "spawn-failed", "worker_id": "\(slot)"])
            pendingSpawns[slot] = monotonicNanos() + 1_000_000_000
        }
    }

    private func retire(_ pid: pid_t, reason: String) {
        guard var w = workers[pid], w.retireReason == nil else { return }
        w.retireReason = reason
        workers[pid] = w
        kill(pid, SIGTERM)
        log.info("worker retiring", metadata: ["event": "worker-retire", "worker_pid": "\(pid)", "worker_id": "\(w.slot)", "reason": "\(reason)"])
    }

    private func checkHeartbeats(_ now: UInt64) {
        let limit = UInt64(config.timeout * 1e9)
        for (pid, w) in workers where w.killReason == nil {
            let hb = scoreboard.load(w.slot, .heartbeat)
            guard now > hb, now - hb > limit else { continue }
            let state = scoreboard.state(w.slot)
            var k = w
            k.killReason = "timeout"
            workers[pid] = k
            kill(pid, SIGKILL)
            log.error("worker \(pid) missed its heartbeat for \(format1(Double(now - hb) / 1e9)) s; killed", metadata: [
                "event": "worker-timeout", "worker_pid": "\(pid)", "worker_id": "\(w.slot)", "last_state": "\(state.name)",
            ])
        }
    }

    // MARK: - Children

    private func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { break }
            if upgradeChildExited(pid, status: describeWaitStatus(status)) { continue }
            guard let w = workers.removeValue(forKey: pid) else { continue }
            let now = monotonicNanos()
            let snap = scoreboard.snapshot(w.slot)
            retired.accepted &+= snap.accepted
            retired.requests &+= snap.requests
            for i in 0..<5 { retired.statusClasses[i] &+= snap.statusClasses[i] }
            retired.bytesOut &+= snap.bytesOut
            retired.dispatchWakeups &+= snap.dispatchWakeups
            retired.dispatchEmptyWakeups &+= snap.dispatchEmptyWakeups
            for i in retired.listeners.indices {
                let c = scoreboard.listenerCounters(w.slot, listener: i)
                for k in c.indices { retired.listeners[i][k] &+= c[k] }
            }
            scoreboard.store(w.slot, .state, Scoreboard.State.free.rawValue)

            let how = describeWaitStatus(status)
            let reason: String
            if let k = w.killReason { reason = k }
            else if let r = w.retireReason { reason = r }
            else if snap.exitReason == Scoreboard.ExitReason.maxRequests.rawValue { reason = "max-requests" }
            else if stop != nil { reason = "stop" }
            else { reason = "crash" }
            if reason != "stop" { restarts[reason, default: 0] += 1 }
            let level: Logger.Level = (reason == "crash" || reason == "timeout") ? .error : .info
            log.log(level: level, "worker \(pid) exited (\(how)), reason \(reason)", metadata: [
                "event": "worker-exited", "worker_pid": "\(pid)", "worker_id": "\(w.slot)", "generation": "\(w.generation)",
                "reason": "\(reason)", "exit_status": "\(how)", "requests": "\(snap.requests)",
            ])
            guard stop == nil else { continue }
            // A worker that leaves because we asked (reload, TTOU) is not replaced here: the pool
            // balancer decides. Otherwise it is respawned into its slot, with a backoff when it
            // died right after it started, so a crash loop does not spin.
            if w.retireReason != nil { continue }
            if w.generation < generation { continue }
            var delay: UInt64 = 0
            if reason == "crash" && now - w.spawnedAt < Master.fastDeathNanos {
                let n = (fastDeaths[w.slot] ?? 0) + 1
                fastDeaths[w.slot] = n
                delay = min(100_000_000 << UInt64(min(n - 1, 7)), 10_000_000_000)
            } else {
                fastDeaths[w.slot] = 0
            }
            if crashLoop() {
                log.critical("every worker dies right after it starts (\(Master.crashLoopThreshold) times in a row); giving up", metadata: ["event": "crash-loop"])
                SystemdNotify.status("crash loop: workers die at start")
                exitCode = 1
                beginStop(immediate: true)
                return
            }
            pendingSpawns[w.slot] = now + delay
            if delay > 0 {
                log.warning("respawning worker slot \(w.slot) in \(format1(Double(delay) / 1e9)) s", metadata: ["event": "respawn-backoff", "worker_id": "\(w.slot)"])
            }
        }
    }

    private func crashLoop() -> Bool {
        let loopingSlots = fastDeaths.values.filter { $0 >= Master.crashLoopThreshold }.count
        return loopingSlots >= wanted && !current().contains { scoreboard.state($0.slot) == .idle || scoreboard.state($0.slot) == .busy }
    }

    // MARK: - Commands

    func beginStop(immediate: Bool) {
        let now = monotonicNanos()
        if case .immediate = stop { return }
        if stop != nil && !immediate { return }
        let timeout = immediate ? 5.0 : config.gracefulTimeout
        stop = immediate ? .immediate(deadline: now + UInt64(timeout * 1e9)) : .graceful(deadline: now + UInt64(timeout * 1e9))
        pendingSpawns.removeAll()
        if let u = upgrade {
            // Stopping in the middle of an upgrade: the new master must not outlive us unready.
            kill(u.pid, SIGQUIT)
        }
        if handedOver {
            // The new master is systemd's main pid now: STOPPING=1 (or any STATUS=) from us
            // would stop the service or overwrite the new master's status.
            SystemdNotify.silenced = true
        } else {
            SystemdNotify.stopping(status: immediate ? "stopping now" : "draining \(workers.count) workers")
        }
        log.info(immediate ? "stopping immediately" : "stopping gracefully", metadata: [
            "event": "stop", "mode": "\(immediate ? "immediate" : "graceful")", "workers": "\(workers.count)",
        ])
        for pid in workers.keys { kill(pid, immediate ? SIGQUIT : SIGTERM) }
        // Not once we handed the sockets over (the new master serves them), nor as a new master
        // not yet committed (they are still the old master's, which keeps serving).
        if !handedOver && handover == nil { closeOwnedListeners() }
    }

    /// Start of a stop: close the sockets herdd bound itself (workers close their copies as
    /// they begin to drain), so new connections are refused at once instead of waiting in a
    /// queue nobody will accept from, to be reset when we exit. systemd's sockets (and those in
    /// its fd store) stay: systemd holds them and queues connections for the next start.
    private func closeOwnedListeners() {
        guard !listenersClosed, allListeners.contains(where: \.owned) else { return }
        listenersClosed = true
        if allListeners.contains(where: { $0.owned && metricsListeners.map(\.fd).contains($0.fd) }) {
            metricsServer?.stopListening()
        }
        for l in allListeners where l.owned {
            _ = herd_epoll_ctl(epfd, EPOLL_CTL_DEL, l.fd, 0, 0)
            // shutdown(SHUT_RD) acts on the socket, not on our fd: it leaves the LISTEN state
            // at once although workers still hold copies (one may be busy in a handler for a
            // while), so connects are refused now (TCP: RST; unix: ECONNREFUSED).
            if shutdown(l.fd, Int32(SHUT_RD)) != 0 {
                log.warning("\(SysError("shutdown", detail: "listener \(l.name)"))", metadata: ["event": "listeners-closed"])
            }
            close(l.fd)
        }
        log.info("closed the listening sockets herdd bound", metadata: [
            "event": "listeners-closed", "listeners": "\(allListeners.filter(\.owned).map(\.name).joined(separator: " "))",
        ])
    }

    private func killAll(reason: String) {
        for (pid, w) in workers where w.killReason == nil {
            var k = w
            k.killReason = reason
            workers[pid] = k
            kill(pid, SIGKILL)
            log.warning("worker \(pid) still running at stop deadline; killed", metadata: ["event": "worker-killed", "worker_pid": "\(pid)", "reason": "\(reason)"])
        }
    }

    private func resize(by delta: Int) {
        let new = max(1, min(config.maxWorkers, wanted + delta))
        guard new != wanted else {
            log.info("pool size stays \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)"])
            return
        }
        wanted = new
        log.info("pool size \(delta > 0 ? "increased" : "decreased") to \(new)", metadata: ["event": "resize", "workers": "\(new)"])
    }

    /// SIGHUP: RELOADING=1, re-read the configuration, roll the workers, READY=1. A config that
    /// does not parse keeps the old one: nothing stops serving.
    private func beginReload() {
        SystemdNotify.reloading()
        log.info("reloading configuration", metadata: ["event": "reload", "config": "\(configPath ?? "-")"])
        do {
            let new = try loadConfig(path: configPath, overrides: overrides)
            try validateHandlers(new, listeners: allListeners)
            if new.listen != config.listen && !new.listen.isEmpty {
                log.warning("listen addresses changed in the configuration; a reload keeps the current sockets (restart or upgrade to change them)", metadata: ["event": "reload-listen-unchanged"])
            }
            if rollback == nil { rollback = Rollback(config: config, wanted: wanted, generation: generation) }
            config = new
            wanted = new.workers
            generation += 1
            reloading = true
            fastDeaths.removeAll()
        } catch {
            log.error("reload failed, keeping the running configuration: \(error)", metadata: ["event": "reload-failed"])
            SystemdNotify.ready(status: "reload failed: \(error)")
            scoreboard.publish(reload: .failed, message: "reload failed, running configuration kept: \(error)")
        }
    }

    /// What a rolling reload returns to when the new generation cannot start.
    struct Rollback {
        var config: ServerConfig
        var wanted: Int
        var generation: UInt64
    }

    /// The new generation keeps dying at start: retire it, go back to the previous configuration
    /// and generation (whose workers are still serving, or are respawned), and report failure.
    private func abortReload(_ rb: Rollback, why: String) {
        let failed = generation
        config = rb.config
        wanted = rb.wanted
        generation = rb.generation
        reloading = false
        rollback = nil
        fastDeaths.removeAll()
        pendingSpawns.removeAll()
        for w in workers.values where w.generation == failed { retire(w.pid, reason: "reload-failed") }
        log.error("reload failed: \(why); back to generation \(generation)", metadata: ["event": "reload-failed", "generation": "\(generation)"])
        SystemdNotify.ready(status: "reload failed: \(why)")
        scoreboard.publish(reload: .failed, message: "reload failed: \(why); previous configuration restored")
    }

    // MARK: - Accept queues

    /// Length and limit of a worker listener's accept queue: TCP_INFO for TCP (tcpi_unacked /
    /// tcpi_sacked on a listening socket), sock_diag UNIX_DIAG_RQLEN for unix stream sockets.
    func acceptQueue(_ i: Int) -> (UInt32, UInt32)? {
        // A closed listener's fd number may belong to something else by now.
        if listenersClosed && listeners[i].owned { return nil }
        var q: UInt32 = 0, lim: UInt32 = 0
        switch listeners[i].family {
        case .tcp:
            return herd_tcp_backlog(listeners[i].fd, &q, &lim) == 0 ? (q, lim) : nil
        case .unix:
            if sockDiagFD < 0 {
                sockDiagFD = herd_sock_diag_socket()
                if sockDiagFD < 0 { return nil }
            }
            return herd_unix_backlog(sockDiagFD, listeners[i].fd, &q, &lim) == 0 ? (q, lim) : nil
        }
    }

    /// Samples each TCP listener's accept queue (TCP_INFO on the listening socket: tcpi_unacked
    /// is the queue length, tcpi_sacked the limit). Keeps the peak for /metrics and warns when
    /// the queue stays above --backlog-alarm (default: half the limit) for 3 seconds.
    private func sampleBacklog(_ now: UInt64) {
        for (i, l) in listeners.enumerated() {
            guard let (q, lim) = acceptQueue(i) else { continue }
            let threshold = config.backlogAlarm > 0 ? UInt32(clamping: config.backlogAlarm) : max(1, lim / 2)
            backlogWindows[i].record(q, above: q >= threshold, now: now)
            if q >= threshold {
                let since = backlogAboveSince[i] ?? now
                backlogAboveSince[i] = since
                if !backlogAlarmed[i] && now - since >= 3_000_000_000 {
                    backlogAlarmed[i] = true
                    log.warning("accept queue of \(l.name) has stayed at or above \(threshold) for 3 s: \(q) waiting, limit \(lim); workers cannot keep up", metadata: [
                        "event": "backlog-alarm", "listener": "\(l.name)", "backlog": "\(q)", "backlog_limit": "\(lim)", "threshold": "\(threshold)",
                    ])
                }
            } else {
                backlogAboveSince[i] = nil
                if backlogAlarmed[i] {
                    backlogAlarmed[i] = false
                    log.notice("accept queue of \(l.name) back below \(threshold): \(q) waiting", metadata: [
                        "event": "backlog-alarm-cleared", "listener": "\(l.name)", "backlog": "\(q)",
                    ])
                }
            }
        }
    }

    // MARK: - Status

    private func updateStatus(_ now: UInt64) {
        guard now - lastStatusAt >= 1_000_000_000 else { return }
        lastStatusAt = now
        let s = statusLine()
        if s != lastStatus {
            SystemdNotify.status(s)
            lastStatus = s
        }
    }

    func statusLine() -> String {
        let s = snapshot().statusLine
        return stop != nil ? "stopping: " + s : s
    }

    /// Reads the scoreboard, the master's own counters and the accept queues.
    func snapshot() -> MetricsSnapshot {
        let now = monotonicNanos()
        var m = MetricsSnapshot(version: herddVersionString, masterPID: getpid(), generation: generation, desiredWorkers: wanted)
        // Our own counters plus those of the masters we replaced (hot upgrades).
        m.restarts = inherited.restarts.merging(restarts, uniquingKeysWith: +)
        m.upgrades = inherited.upgrades &+ upgrades
        m.accepted = inherited.accepted &+ retired.accepted
        m.requestsByClass = zip(inherited.requestsByClass, retired.statusClasses).map { $0 &+ $1 }
        m.bytesOut = inherited.bytesOut &+ retired.bytesOut
        m.dispatchWakeups = inherited.dispatchWakeups &+ retired.dispatchWakeups
        m.dispatchEmptyWakeups = inherited.dispatchEmptyWakeups &+ retired.dispatchEmptyWakeups
        m.listeners = listeners.enumerated().map { i, l in
            var ls = MetricsSnapshot.ListenerStats(name: l.name, address: l.address, family: l.family.rawValue)
            ls.add(retired.listeners[i])
            if let c = inherited.listeners[l.name] { ls.add(c) }
            let alarmMillis = (inherited.backlogAlarmMillis[l.name] ?? 0) &+ backlogWindows[i].aboveNanos / 1_000_000
            ls.backlogAlarmSeconds = Double(alarmMillis) / 1000
            if let (q, lim) = acceptQueue(i) {
                ls.backlog = q
                ls.backlogLimit = lim
                ls.backlogMax = max(backlogWindows[i].peak(now: now), q)
            }
            return ls
        }
        for w in workers.values.sorted(by: { $0.slot < $1.slot }) {
            let snap = scoreboard.snapshot(w.slot)
            m.accepted &+= snap.accepted
            m.active &+= snap.active
            m.bytesOut &+= snap.bytesOut
            m.dispatchWakeups &+= snap.dispatchWakeups
            m.dispatchEmptyWakeups &+= snap.dispatchEmptyWakeups
            for c in 0..<5 { m.requestsByClass[c] &+= snap.statusClasses[c] }
            for i in m.listeners.indices { m.listeners[i].add(scoreboard.listenerCounters(w.slot, listener: i)) }
            m.workers.append(MetricsSnapshot.WorkerStats(
                slot: w.slot, pid: w.pid, generation: w.generation,
                state: w.retireReason != nil && snap.state != .exited ? "draining" : snap.state.name,
                requests: snap.requests, accepted: snap.accepted, active: snap.active,
                heartbeatAgeSeconds: now > snap.heartbeat ? Double(now - snap.heartbeat) / 1e9 : 0,
                uptimeSeconds: Double(now - w.spawnedAt) / 1e9))
        }
        return m
    }

    /// Requests on the `metrics` listeners: /metrics (Prometheus text), /status, /status.json.
    func metricsResponse(_ req: HTTPRequest) -> HTTPResponse {
        guard req.method == "GET" || req.method == "HEAD" else {
            var r = HTTPResponse.errorResponse(status: 405)
            r.headers.set("Allow", "GET, HEAD")
            return r
        }
        let snap = snapshot()
        switch req.path {
        case "/metrics", "/":
            return HTTPResponse.text(200, snap.prometheusText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/status":
            return HTTPResponse.text(200, StatusReport.table(snap))
        case "/status.json":
            return HTTPResponse.text(200, StatusReport.json(snap), contentType: "application/json")
        default:
            return HTTPResponse.errorResponse(status: 404)
        }
    }
}

func format1(_ v: Double) -> String {
    let tenths = Int((v * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

func describeWaitStatus(_ status: Int32) -> String {
    let sig = status & 0x7f
    if sig == 0 { return "exit \((status >> 8) & 0xff)" }
    if sig != 0x7f { return "signal \(sig) (\(String(cString: strsignal(sig))))" }
    return "stopped"
}
