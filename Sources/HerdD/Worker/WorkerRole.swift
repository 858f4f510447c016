import HerdLibc
import Handlers
import Logging
import HerdSys

/// The worker role: started by the master with posix_spawn, never by hand. Its command line is
/// a private protocol between master and worker (Master.spawnWorker writes it):
///
///     herdd worker --slot N --generation N --master-pid PID --scoreboard-fd FD
///                  [--dispatch-fd FD] [--listener NAME]... -- key=value...
///
/// Listener i is fd 3 + i; the dispatch socketpair is FD (send end) and FD + 1 (receive end);
/// the settings after "--" are ServerConfig.serialize()'s output.
enum WorkerRole {
    static let commandName = "worker"

    struct Arguments: Equatable {
        var slot = -1
        var generation: UInt64 = 0
        var masterPID: Int32 = 0
        var scoreboardFD: Int32 = -1
        var dispatchFD: Int32 = -1
        var listenerNames: [String] = []
        var settings: [String] = []

        /// The command line after the program name: "worker --slot N ... -- settings".
        var commandLine: [String] {
            var argv = [WorkerRole.commandName, "--slot", "\(slot)", "--generation", "\(generation)",
                        "--master-pid", "\(masterPID)", "--scoreboard-fd", "\(scoreboardFD)"]
            if dispatchFD >= 0 { argv += ["--dispatch-fd", "\(dispatchFD)"] }
            for name in listenerNames { argv += ["--listener", name] }
            return argv + ["--"] + settings
        }
    }

    struct UsageError: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads the worker's arguments (everything after "worker").
    static func parse(_ args: [String]) throws -> Arguments {
        var a = Arguments()
        var seen: Set<String> = []
        var i = 0
        func value(_ option: String) throws -> String {
            guard i + 1 < args.count else { throw UsageError(description: "\(option) needs a value") }
            i += 1
            return args[i]
        }
        func number<T: FixedWidthInteger>(_ option: String, _: T.Type) throws -> T {
            let v = try value(option)
            guard let n = T(v) else { throw UsageError(description: "\(option): '\(v)' is not a number") }
            return n
        }
        while i < args.count {
            let option = args[i]
            switch option {
            case "--slot": a.slot = try number(option, Int.self)
            case "--generation": a.generation = try number(option, UInt64.self)
            case "--master-pid": a.masterPID = try number(option, Int32.self)
            case "--scoreboard-fd": a.scoreboardFD = try number(option, Int32.self)
            case "--dispatch-fd": a.dispatchFD = try number(option, Int32.self)
            case "--listener": a.listenerNames.append(try value(option))
            case "--":
                a.settings = Array(args[(i + 1)...])
                i = args.count
                continue
            default:
                throw UsageError(description: "unknown argument '\(option)'")
            }
            if option != "--listener" { seen.insert(option) }
            i += 1
        }
        for required in ["--slot", "--generation", "--master-pid", "--scoreboard-fd"] where !seen.contains(required) {
            throw UsageError(description: "missing \(required)")
        }
        return a
    }

    static func main(_ args: [String]) -> Never {
        let parsed: Arguments
        do {
            parsed = try parse(args)
        } catch {
            let message = Array("herdd worker: \(error) (the worker role is started by the master, not by hand)\n".utf8)
            message.withUnsafeBytes { Sys.writeAll(STDERR_FILENO, $0) }
            Sys.exit(ExitStatus.usage)
        }
        // The level comes with the settings (the master's --log-level); a worker whose settings
        // do not parse logs that below at the default level.
        let level = (try? ServerConfig.deserialize(parsed.settings))?.logLevel ?? .info
        Log.bootstrap(role: "worker", workerID: parsed.slot, level: level)
        ProcessTitle.set("\(ProgramName.current): worker \(parsed.slot)", comm: ProcessTitle.workerComm(slot: parsed.slot))
        let log = Logger(label: "herdd.worker")
        #if HERDD_TEST_HOOKS
        // Test builds only (debug configuration, see Package.swift): the release binary has none.
        // Fault injection for the crash-loop and reload-rollback tests: a worker that dies as
        // soon as it starts (always, or from generation N on with "generation>=N").
        if let v = Sys.environment("HERDD_TEST_WORKER_EXIT_AT_START").map({ $0 }) {
            let fromGeneration = v.hasPrefix("generation>=") ? UInt64(v.dropFirst("generation>=".count)) ?? 0 : 0
            if parsed.generation >= fromGeneration {
                log.error("HERDD_TEST_WORKER_EXIT_AT_START=\(v); exiting", metadata: ["event": "worker-failed"])
                Sys.exit(3)
            }
        }
        // Fault injection for the start-up tests: a worker that takes a while before it sets up
        // its signal handling ("SECONDS", or "generation>=N:SECONDS"). Its stop signals are
        // blocked since the spawn, so a TERM in this window waits for the signalfd.
        if let v = Sys.environment("HERDD_TEST_WORKER_START_DELAY").map({ $0 }) {
            var spec = Substring(v)
            var fromGeneration: UInt64 = 0
            if spec.hasPrefix("generation>="), let colon = spec.firstIndex(of: ":") {
                fromGeneration = UInt64(spec.dropFirst("generation>=".count).prefix(upTo: colon)) ?? 0
                spec = spec[spec.index(after: colon)...]
            }
            if parsed.generation >= fromGeneration, let seconds = Double(spec), seconds > 0 {
                var left = Int(seconds * 1000)
                while left > 0 { Sys.sleep(micros: UInt32(min(left, 100) * 1000)); left -= 100 }
            }
        }
        #endif
        do {
            let config = try ServerConfig.deserialize(parsed.settings)
            let scoreboard = try Scoreboard(attaching: parsed.scoreboardFD)
            guard parsed.slot >= 0, parsed.slot < scoreboard.slotCount else {
                log.critical("slot \(parsed.slot) outside the scoreboard (\(scoreboard.slotCount) slots)", metadata: ["event": "worker-failed"])
                Sys.exit(ExitStatus.usage)
            }
            var bound: [Worker.BoundListener] = []
            for (i, name) in parsed.listenerNames.enumerated() {
                let fd = 3 + Int32(i)
                let handler = try HandlerRegistry.make(config.handlerSpec(for: name))
                bound.append(Worker.BoundListener(fd: fd, name: name, handler: handler, isTCP: !Sys.isListeningUnixSocket(fd)))
            }
            let worker = try Worker(slot: parsed.slot, masterPID: parsed.masterPID, config: config,
                                scoreboard: scoreboard, listeners: bound,
                                dispatch: parsed.dispatchFD >= 0 ? DispatchPair(inheritedAt: parsed.dispatchFD) : nil)
            try worker.run()
        } catch {
            log.critical("worker failed: \(error)", metadata: ["event": "worker-failed"])
            Sys.exit(ExitStatus.software)
        }
    }
}
