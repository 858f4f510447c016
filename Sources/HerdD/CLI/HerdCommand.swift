import ArgumentParser
import Handlers
import HerdSys
import Logging

let herddVersion = "0.1.0"
/// A build tag kept as a long literal (stored in the binary's read-only data, not inline), so a
/// test can make a second, distinguishable build by patching these bytes in a copy.
let herddBuildTag = "herdd-build-tag:0000000000000000"
/// Version shown in logs, metrics and --version: "0.1.0" (or an application's own version,
/// AppIdentity), or "0.1.0+TAG" for a tagged build.
var herddVersionString: String {
    let version = AppIdentity.version ?? herddVersion
    let tag = herddBuildTag.dropFirst("herdd-build-tag:".count)
    return tag.allSatisfy { $0 == "0" } ? version : "\(version)+\(tag)"
}
/// The program's name in help: an application's own (AppIdentity), else the executable's file
/// name (argv[0] without its directory).
let programName: String = {
    if AppIdentity.isApplication { return ProgramName.current }
    let name = CommandLine.arguments.first.map { String($0.split(separator: "/").last ?? "") } ?? ""
    return name.isEmpty ? "herdd" : name
}()
/// Listeners with this handler are served by the master itself (metrics and status).
let metricsHandlerName = "metrics"

struct HerdCommand: ParsableCommand {
    /// The program's own name in help and errors: `herdd`, or the name of an executable of
    /// your own built on the Herd library.
    static let configuration = CommandConfiguration(
        commandName: programName,
        abstract: AppIdentity.abstract ?? "Prefork HTTP server: systemd socket activation, one master, EPOLLEXCLUSIVE workers.",
        version: herddVersionString,
        subcommands: [Serve.self, StatusCommand.self, ReloadCommand.self, UpgradeCommand.self, StopCommand.self],
        defaultSubcommand: Serve.self)
}

/// Exit codes from sysexits.h, as systemd and shell scripts expect.
enum ExitStatus {
    static let usage: Int32 = 64
    static let software: Int32 = 70
    static let osError: Int32 = 71
    static let config: Int32 = 78
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the master and its workers (the default command).",
        discussion: """
        Under systemd socket activation the listening sockets come from LISTEN_FDS / LISTEN_FDNAMES and \
        --listen is ignored; otherwise herdd binds --listen addresses itself (default 127.0.0.1:8080). \
        Signals to the master: TERM/INT graceful stop, QUIT immediate stop, HUP reload, TTIN/TTOU one \
        worker more/less.
        """)

    @Option(name: .long, help: ArgumentHelp("Configuration file (key = value lines).", valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Listen address: HOST:PORT, [IPV6]:PORT or unix:/PATH, optionally ,name=NAME. Repeatable.", valueName: "addr"))
    var listen: [String] = []

    @Option(name: .long, help: ArgumentHelp("Handler of a listener: NAME=HANDLER (hello, health, debug, static:/DIR). Repeatable.", valueName: "name=handler"))
    var handler: [String] = []

    @Option(name: .customLong("default-handler"), help: "Handler for listeners without a --handler entry (default: hello).")
    var defaultHandler: String?

    @Option(name: .long, help: AppIdentity.threadsPerWorker > 1
        ? "Number of worker processes (default: online CPUs / \(AppIdentity.threadsPerWorker), the busy threads of each worker of this program)."
        : "Number of worker processes (default: online CPUs).")
    var workers: String?

    @Option(name: .long, help: "listen(2) backlog for sockets herdd binds itself (default 1024).")
    var backlog: String?

    @Option(name: .customLong("accept-mode"), help: "exclusive (EPOLLEXCLUSIVE, default) or shared (every worker wakes: the thundering herd).")
    var acceptMode: String?

    @Option(name: .long, help: "rotate (default: nginx's re-add every 16 accepts, even spread), hot (EPOLLEXCLUSIVE's LIFO, a few hot workers) or spread (even spread, share-capped).")
    var balance: String?

    @Option(name: .customLong("graceful-timeout"), help: "Seconds workers get to finish in-flight requests on stop (default 30).")
    var gracefulTimeout: String?

    @Option(name: .long, help: "Seconds without a heartbeat before a worker is killed (default 30).")
    var timeout: String?

    @Option(name: .customLong("max-requests"), help: "Recycle a worker after this many requests (0 = never).")
    var maxRequests: String?

    @Option(name: .customLong("max-requests-jitter"), help: "Random 0...N added to --max-requests per worker.")
    var maxRequestsJitter: String?

    @Option(name: .customLong("keepalive-timeout"), help: "Seconds an idle keep-alive connection stays open (default 5).")
    var keepaliveTimeout: String?

    @Option(name: .customLong("header-timeout"), help: "Seconds to receive a request's head before 408 (default 10).")
    var headerTimeout: String?

    @Option(name: .customLong("body-timeout"), help: "Seconds a request body may stay silent between two reads before 408; also the grace before --body-min-rate applies (default 10).")
    var bodyTimeout: String?

    @Option(name: .customLong("body-min-rate"), help: "Lowest average body rate in bytes/s (k, m suffixes) after --body-timeout, else 408 (default 500; 0 = none).")
    var bodyMinRate: String?

    @Option(name: .customLong("max-body"), help: "Largest request body in bytes, k/m/g suffixes allowed (default 1m); larger gets 413.")
    var maxBody: String?

    @Option(name: .customLong("upgrade-timeout"), help: "Seconds a new master gets to become ready on SIGUSR2 (default 30).")
    var upgradeTimeout: String?

    @Option(name: .customLong("backlog-alarm"), help: "Warn when an accept queue stays at or above N for 3 s (default: half its limit).")
    var backlogAlarm: String?

    @Option(name: .customLong("access-log"), help: "on or off (default): one log entry per request, at most 100 per second per worker.")
    var accessLog: String?

    @Option(name: .customLong("multi-accept"), help: "on or off (default): accept every queued connection per wakeup instead of one.")
    var multiAccept: String?

    @Option(name: .customLong("defer-accept"), help: "on (default) or off: TCP_DEFER_ACCEPT on TCP listeners, a connection is accepted once its request arrives (nginx's listen ... deferred).")
    var deferAccept: String?

    @Option(name: .customLong("notsent-lowat"), help: "TCP_NOTSENT_LOWAT of a connection once its socket was full: bytes the kernel holds beyond what it can send now (k, m suffixes; 0 = the system's; default auto = 16k in workers whose handlers never block, else 0).")
    var notsentLowat: String?

    @Option(name: .customLong("worker-concurrency"), help: "Async requests in flight per worker at most; at the bound it stops accepting (default 1000).")
    var workerConcurrency: String?

    @Option(name: .customLong("async-timeout"), help: "Seconds an async request may take before it is cancelled and answered 504 (default 60).")
    var asyncTimeout: String?

    @Option(name: .customLong("max-queue-time"), help: "Milliseconds a request may wait for a worker; beyond, 503 with Retry-After at once (default 0 = off; docs/overload.md).")
    var maxQueueTime: String?

    @Option(name: .customLong("trust-request-start"), help: "on or off (default): count a front proxy's X-Request-Start: t=<µs> in the queue time.")
    var trustRequestStart: String?

    @Option(name: .customLong("min-spare"), help: "Dynamic pool: grow (up to --max-workers) while fewer workers are idle (0 = off).")
    var minSpare: String?

    @Option(name: .customLong("max-spare"), help: "Dynamic pool: shrink (down to --workers) while more workers are idle (0 = off).")
    var maxSpare: String?

    @Option(name: .customLong("max-workers"), help: "Upper bound of the pool for TTIN and the dynamic pool (default 256).")
    var maxWorkers: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical (default info).")
    var logLevel: String?

    /// Command-line settings in the config file's vocabulary, applied after the file.
    var overrides: [(String, String)] {
        var o: [(String, String)] = []
        for l in listen { o.append(("listen", l)) }
        for h in handler { o.append(("handler", h)) }
        let scalars: [(String, String?)] = [
            ("default-handler", defaultHandler), ("workers", workers), ("backlog", backlog), ("accept-mode", acceptMode), ("balance", balance),
            ("graceful-timeout", gracefulTimeout), ("timeout", timeout), ("max-requests", maxRequests),
            ("max-requests-jitter", maxRequestsJitter), ("keepalive-timeout", keepaliveTimeout),
            ("header-timeout", headerTimeout), ("body-timeout", bodyTimeout), ("body-min-rate", bodyMinRate), ("max-body", maxBody), ("upgrade-timeout", upgradeTimeout),
            ("backlog-alarm", backlogAlarm), ("access-log", accessLog), ("max-workers", maxWorkers),
            ("min-spare", minSpare), ("max-spare", maxSpare), ("multi-accept", multiAccept), ("defer-accept", deferAccept), ("notsent-lowat", notsentLowat),
            ("worker-concurrency", workerConcurrency), ("async-timeout", asyncTimeout),
            ("log-level", logLevel), ("max-queue-time", maxQueueTime), ("trust-request-start", trustRequestStart),
        ]
        for (k, v) in scalars { if let v { o.append((k, v)) } }
        return o
    }

    func validate() throws {
        // Parse everything up front so a bad flag is a usage error (exit 64) with a clear message.
        do { _ = try loadConfig(path: nil, overrides: overrides) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        // The level (command line, else config file) is known before the config is loaded for
        // real, so the loading's own errors are logged at it; a config that fails to load is
        // reported below, at the default level.
        let level = (try? loadConfig(path: config, overrides: overrides))?.logLevel ?? .info
        Log.bootstrap(role: "master", level: level)
        let log = Logger(label: "herdd.master")
        func fatal(_ message: String, _ code: Int32) -> ExitCode {
            log.critical("\(message)", metadata: ["event": "fatal"])
            SystemdNotify.send("STATUS=failed: \(message)")
            return ExitCode(code)
        }
        // Resolve our path on disk and pick up an upgrade handover before anything else
        // (it is in the environment, which workers must not inherit).
        let executablePath = resolveExecutablePath()
        let handover = UpgradeHandover.fromEnvironment()
        var cfg: ServerConfig
        do { cfg = try loadConfig(path: config, overrides: overrides) } catch { throw fatal("\(error)", ExitStatus.config) }

        var listeners: [Listener]
        do {
            if let passed = try Listeners.fromActivation() {
                listeners = passed
                if !cfg.listen.isEmpty {
                    let from = handover.map { "the previous master (pid \($0.oldPID))" } ?? "systemd"
                    log.notice("sockets passed by \(from); ignoring --listen/listen settings", metadata: ["event": "listen-ignored"])
                }
            } else {
                if cfg.listen.isEmpty { cfg.listen = [ListenSpec(address: .ipv4("127.0.0.1", port: 8080))] }
                listeners = try cfg.listen.map { try Listeners.bind($0, backlog: cfg.backlog) }
                // Sockets we bound ourselves go into systemd's fd store (if the unit allows it,
                // FileDescriptorStoreMax=); the next start gets them back as LISTEN_FDS, so a
                // `systemctl restart` without a .socket unit never refuses a connection.
                SystemdNotify.storeListeners(listeners)
            }
        } catch {
            throw fatal("cannot set up listening sockets: \(error)", ExitStatus.osError)
        }
        if listeners.count > Scoreboard.maxListeners {
            throw fatal("herdd supports at most \(Scoreboard.maxListeners) listeners, got \(listeners.count)", ExitStatus.config)
        }
        // A handler's validator is the program's own code and may start threads (a database
        // library, Dispatch, NIO's thread pool). Block the signals the master reads from its
        // signalfd before it runs: threads inherit the mask, so a SIGTERM or SIGUSR2 stays
        // pending for the master's loop instead of reaching such a thread, whose default action
        // would end the master at once.
        do { try Sys.blockSignals(Master.handledSignals) } catch { throw fatal("cannot block signals: \(error)", ExitStatus.osError) }
        do { try validateHandlers(cfg, listeners: listeners) } catch { throw fatal("\(error)", ExitStatus.config) }

        let code: Int32
        do {
            let master = try Master(config: cfg, configPath: config, overrides: overrides, listeners: listeners,
                                    executablePath: executablePath, handover: handover)
            code = try master.run()
        } catch {
            throw fatal("master failed: \(error)", ExitStatus.osError)
        }
        if code != 0 { throw ExitCode(code) }
    }
}

/// Defaults, then the config file (if any), then command-line overrides.
func loadConfig(path: String?, overrides: [(String, String)]) throws -> ServerConfig {
    var c = ServerConfig()
    if let path { try c.apply(filePath: path) }
    // Listen and handler entries on the command line replace those of the file.
    if overrides.contains(where: { $0.0 == "listen" }) { c.listen = [] }
    for (k, v) in overrides { try c.apply(key: k, value: v, origin: "--\(k)") }
    return try c.validated()
}

/// Every listener needs a handler that can be built; fail before spawning workers.
func validateHandlers(_ config: ServerConfig, listeners: [Listener]) throws {
    #if HERDD_TEST_HOOKS
    // Test builds only: a validator that leaves a thread behind, as a database library or
    // Dispatch would (test_lifecycle.py: the master still drains on SIGTERM).
    if Sys.environment("HERDD_TEST_VALIDATOR_THREAD") != nil { startIdleTestThread() }
    #endif
    for l in listeners {
        let spec = config.handlerSpec(for: l.name)
        if spec == metricsHandlerName { continue }
        // Validation only: an application's handler opens its resources in each worker.
        do { try HandlerRegistry.validate(spec) } catch {
            throw ServerConfig.ConfigError(message: "listener '\(l.name)' (\(l.address)): handler '\(spec)': \(error)")
        }
    }
    let names = Set(listeners.map(\.name))
    for name in config.handlers.keys where !names.contains(name) {
        Logger(label: "herdd.master").warning("handler configured for listener '\(name)', but no listener has that name (have: \(names.sorted().joined(separator: ", ")))", metadata: ["event": "config-warning"])
    }
}

#if HERDD_TEST_HOOKS
/// Test builds only: a detached plain pthread that sleeps for the life of the process, with the
/// signal mask of the thread that starts it (as NIO's thread pool or a database library's threads).
private func startIdleTestThread() {
    try? Sys.startThread(what: "idle test thread") {
        while true { Sys.sleep(micros: 3_600_000_000) }
    }
}
#endif
