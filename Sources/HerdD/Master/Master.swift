import HerdLibc
import Handlers
import HerdSys
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
    /// SIGUSR2 hot upgrade (Upgrade.swift): our side as the old master (we start a successor)
    /// and as the new master (an old master started us), each with its own state.
    let launcher: UpgradeLauncher
    let successor: UpgradeSuccessor
    let executablePath: String
    let scoreboard: Scoreboard
    /// The dispatch socketpair (Worker/Dispatch.swift), passed to every worker of this master.
    let dispatch: DispatchPair
    var log = Logger(label: "herdd.master")
    let workerEnv: [String]
    let workerExe = "/proc/self/exe"

    var epoll = Epoll.none
    var sigfd: Int32 = -1

    var generation: UInt64 = 1
    /// Pool sizing (Pool.swift), respawn backoff and crash loop (Respawn.swift), rolling reload
    /// and rollback (Reload.swift): plain values; this class carries out what they decide.
    var pool: PoolPolicy
    var respawn = RespawnPolicy()
    var reload = ReloadPolicy()
    var wanted: Int {
        get { pool.wanted }
        set { pool.wanted = newValue }
    }
    var reloading: Bool { reload.reloading }
    var workers: [pid_t: WorkerProc] = [:]
    /// Slots waiting for a (re)spawn and when it is due (crash backoff).
    var pendingSpawns: [Int: UInt64] = [:]
    var readySent = false
    var stop: Stop? = nil
    /// Sockets herdd bound itself, sealed by a graceful stop and not yet closed (Stop.swift).
    var sealedListeners: [Int32] = []
    var exitCode: Int32 = 0
    var lastStatus = ""
    var lastStatusAt: UInt64 = 0
    var watchdogUsec: UInt64? = SystemdNotify.watchdogInterval()
    var lastWatchdogAt: UInt64 = 0

    /// Counters of workers that have exited, so totals survive restarts.
    var retired = RetiredTotals()
    /// Whether requests were shed lately (STATUS=, herdd status).
    var shedWatch = ShedWatch()
    /// Accept-queue sampling (every tick) and alarm (Metrics/BacklogMonitor.swift).
    let backlog: BacklogMonitor
    var restarts: [String: UInt64] = [:]

    struct RetiredTotals {
        var accepted: UInt64 = 0
        var requests: UInt64 = 0
        var statusClasses = [UInt64](repeating: 0, count: 5)
        var bytesOut: UInt64 = 0
        var listeners: [[UInt64]] = [] // per listener: Scoreboard.listenerCounters
        var dispatchWakeups: UInt64 = 0
        var dispatchEmptyWakeups: UInt64 = 0
        var async = [UInt64](repeating: 0, count: 4)
        var closes = CloseReason.zeroCounts
    }

    /// Signals the master reads from its signalfd.
    static let handledSignals: [Int32] = [SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2]

    init(config: ServerConfig, configPath: String?, overrides: [(String, String)], listeners: [Listener],
         executablePath: String, handover: UpgradeHandover?) throws {
        // Block the signals run() reads from its signalfd now: one that arrives while we set up
        // stays pending for the loop instead of killing the master half-way (default action).
        try Sys.blockSignals(Master.handledSignals)
        self.config = config
        self.executablePath = executablePath
        self.configPath = configPath
        self.overrides = overrides
        self.pool = PoolPolicy(wanted: config.workers)
        self.generation = handover?.generation ?? 1
        let moved = try Master.prepareListeners(listeners, handover: handover, deferAccept: config.deferAccept)
        self.allListeners = moved
        self.listeners = moved.filter { config.handlerSpec(for: $0.name) != metricsHandlerName }
        self.metricsListeners = moved.filter { config.handlerSpec(for: $0.name) == metricsHandlerName }
        // Twice the hard limit: during a rolling reload old and new workers overlap.
        let runtimeDir = Sys.environment("RUNTIME_DIRECTORY").map { $0.split(separator: ":").first.map(String.init) ?? "" }
        self.scoreboard = try Scoreboard(creatingSlots: ServerConfig.workerLimit * 2, masterPID: Sys.processID(),
                                         publishDirectory: runtimeDir?.isEmpty == false ? runtimeDir : nil,
                                         publishNow: handover == nil)
        self.dispatch = try DispatchPair()
        self.backlog = BacklogMonitor(listeners: self.listeners)
        self.retired.listeners = Array(repeating: [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount), count: self.listeners.count)
        self.workerEnv = Spawn.environment(removing: [
            "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
        ])
        self.launcher = UpgradeLauncher(log: log, scoreboard: scoreboard, allListeners: moved, executablePath: executablePath)
        self.successor = UpgradeSuccessor(handover: handover, log: log, scoreboard: scoreboard)
        launcher.host = self
        successor.host = self
    }

    // MARK: - Main loop

    func run() throws -> Int32 {
        ProcessTitle.set("\(ProgramName.current): master")
        try Sys.ignoreSignal(SIGPIPE)
        if successor.awaitingCommit { successor.dropUSR2MeantForPredecessor(when: "while this master started") }
        sigfd = try Sys.signalFD(Master.handledSignals)
        epoll = try Epoll(what: "master")
        try epoll.add(sigfd, .input, .signals, what: "signalfd")
        launcher.epoll = epoll
        successor.epoll = epoll
        if let h = successor.handover {
            // Metrics wait for the commit: until then the old master answers them.
            try epoll.add(h.fd, [.input, .readHangUp], .upgradeHandover, what: "upgrade socket")
        } else if !metricsListeners.isEmpty {
            metricsServer = try MetricsServer(listeners: metricsListeners, epoll: epoll, log: log)
        }

        log.info("\(ProgramName.current) \(herddVersionString) master starting", metadata: [
            "event": "start", "version": "\(herddVersionString)", "workers": "\(wanted)",
            "listeners": "\(allListeners.map { "\($0.name)=\($0.address)" }.joined(separator: " "))",
            "accept_mode": "\(config.acceptMode.rawValue)",
        ])
        SystemdNotify.status("starting \(wanted) workers")
        tick()

        var events = EpollReadyList(capacity: 16)
        while true {
            // 100 ms housekeeping tick; 5 ms while workers start, so READY=1 follows the last
            // worker's readiness closely (start to READY=1 is part of what we measure).
            // Also 5 ms while sealed sockets wait for their queues to empty (Stop.swift): new
            // clients meet dropped SYNs meanwhile, and the close that refuses them should follow
            // the workers' sweep closely.
            let tickMillis: Int32 = (!readySent || reloading || !sealedListeners.isEmpty || workers.values.contains { scoreboard.state($0.slot) == .starting }) ? 5 : 100
            let n = try epoll.wait(&events, timeoutMillis: tickMillis)
            for i in 0..<n {
                switch events[i].tag {
                case .signals?: drainSignals()
                case .upgradePipe?: launcher.pipeEvent(timeout: config.upgradeTimeout)
                case .upgradeHandover?: successor.handoverEvent()
                case let tag?: metricsServer?.event(tag, respond: metricsResponse) // .metricsListener, .metricsClient
                case nil: break
                }
            }
            tick()
            if mayExit(now: monotonicNanos()) { break }
        }
        launcher.sendFinalTotals()
        // After a hand-over the new master renames its own file over ours (atomically); removing
        // ours here could race with that rename and remove the new master's file instead
        // (check, then unlink: the name may change in between).
        if !launcher.handedOver { scoreboard.unpublish(masterPID: Sys.processID()) }
        let reason = exitCode == 0 ? "stopped" : "failed"
        log.info("\(ProgramName.current) master exiting", metadata: ["event": "exit", "reason": "\(reason)", "exit_code": "\(exitCode)"])
        return exitCode
    }

    private func drainSignals() {
        while let sig = Sys.readSignal(sigfd) {
            switch sig {
            case SIGCHLD: reap()
            case SIGTERM, SIGINT:
                if case .graceful = stop, sig == SIGINT { beginStop(immediate: true) } else { beginStop(immediate: false) }
            case SIGQUIT: beginStop(immediate: true)
            case SIGHUP: beginReload()
            case SIGTTIN: resize(by: 1)
            case SIGTTOU: resize(by: -1)
            case SIGUSR2: launcher.begin(generation: generation, timeout: config.upgradeTimeout, awaitingCommit: successor.awaitingCommit)
            default: break
            }
        }
    }

    // MARK: - Housekeeping

    private func tick() {
        let now = monotonicNanos()
        metricsServer?.sweep(now: now)
        launcher.checkDeadline(now, timeout: config.upgradeTimeout, atTick: true)
        backlog.sample(now: now, alarmThreshold: config.backlogAlarm, log: log)
        if let stop {
            closeSealedListeners()
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
            if !successor.reportReady() {
                SystemdNotify.ready(status: status)
            }
            lastStatus = status
            log.info("\(ProgramName.current) ready", metadata: ["event": "ready", "workers": "\(wanted)", "generation": "\(generation)"])
        }
        let outcome: ReloadPolicy.Decision = !reloading ? .none
            : reload.decide(readyCurrent: currentReady(), wanted: wanted, oldRemaining: oldGeneration().count,
                            newWorkersDieAtStart: respawn.newWorkersDieAtStart)
        switch outcome {
        case .complete:
            reload.end()
            SystemdNotify.ready(status: statusLine())
            scoreboard.setHeader(.generation, generation)
            scoreboard.publish(reload: .ok, message: "generation \(generation) serving with \(wanted) workers")
            log.info("reload complete", metadata: ["event": "reload-done", "generation": "\(generation)", "workers": "\(wanted)"])
        case .rollBack:
            if let rb = reload.rollback { abortReload(rb, why: "new workers die right after they start") }
        case .none:
            break
        }
        updateStatus(now)
        feedWatchdog(now)
    }

    private func current() -> [WorkerProc] {
        workers.values.filter { $0.generation == generation && $0.retireReason == nil }
    }

    private func oldGeneration() -> [WorkerProc] {
        workers.values.filter { $0.generation < generation && $0.retireReason == nil }
    }

    func currentReady() -> Int {
        PoolPolicy.ready(current(), scoreboard)
    }

    /// Carries out PoolPolicy's plan: queues missing slots for a spawn, retires surplus and
    /// (rolling reload) old workers, spawns the queued slots that are due.
    private func balancePool(_ now: UInt64) {
        let plan = pool.balance(current: current(), old: oldGeneration(), pending: pendingSpawns.count, states: scoreboard)
        for _ in 0..<plan.spawn {
            guard let slot = freeSlot() else {
                log.error("no free scoreboard slot", metadata: ["event": "spawn-failed"])
                break
            }
            pendingSpawns[slot] = now
        }
        for pid in plan.retireSurplus { retire(pid, reason: "ttou") }
        for pid in plan.retireOld { retire(pid, reason: "reload") }
        for (slot, due) in pendingSpawns where due <= now {
            pendingSpawns.removeValue(forKey: slot)
            spawnWorker(slot: slot)
        }
    }

    /// Min/max-spare dynamic pool (PoolPolicy.adjustSpare): logs the step it took.
    private func adjustDynamicPool(_ now: UInt64) {
        switch pool.adjustSpare(now: now, settings: config, reloading: reloading, current: current(), states: scoreboard) {
        case .grow(let idle):
            log.info("only \(idle) idle workers (min-spare \(config.minSpare)): growing to \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)", "reason": "min-spare"])
        case .shrink(let idle):
            log.info("\(idle) idle workers (max-spare \(config.maxSpare)): shrinking to \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)", "reason": "max-spare"])
        case nil:
            break
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
            slot: slot, generation: generation, masterPID: Sys.processID(), scoreboardFD: scoreboardFD, dispatchFD: dispatchFD,
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

    /// kill(2) of one of our workers. It cannot fail for a child not yet reaped (a zombie still
    /// accepts signals); should it, the log says so.
    func signalWorker(_ pid: pid_t, _ sig: Int32) {
        do { try Sys.kill(pid, sig) } catch {
            log.warning("\(error)", metadata: ["event": "kill-failed", "worker_pid": "\(pid)"])
        }
    }

    func retire(_ pid: pid_t, reason: String) {
        guard var w = workers[pid], w.retireReason == nil else { return }
        w.retireReason = reason
        workers[pid] = w
        signalWorker(pid, SIGTERM)
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
            signalWorker(pid, SIGKILL)
            log.error("worker \(pid) missed its heartbeat for \(format1(Double(now - hb) / 1e9)) s; killed", metadata: [
                "event": "worker-timeout", "worker_pid": "\(pid)", "worker_id": "\(w.slot)", "last_state": "\(state.name)",
            ])
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
