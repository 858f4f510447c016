import HerdLibc
import HerdSys
import Logging

/// How workers watch the listening sockets.
enum AcceptMode: String, Sendable, CaseIterable {
    /// EPOLLIN | EPOLLEXCLUSIVE: the kernel wakes one waiting worker per connection.
    case exclusive
    /// EPOLLIN only: every idle worker wakes for every connection (the classic thundering herd,
    /// kept to measure the difference).
    case shared
}

/// How connections spread over workers (see docs/design.md, "Balance").
enum BalancePolicy: String, Sendable, CaseIterable {
    /// EPOLLEXCLUSIVE as the kernel does it: the most recently waiting worker takes the next
    /// connection (LIFO), so a few hot workers serve most of the load (warm caches).
    case hot
    /// Like nginx (ngx_reorder_accept_events): every 16 accepts a worker re-adds the listener,
    /// moving to the tail of its exclusive wait queue, so the LIFO order cannot pin the load on
    /// one worker. Two epoll_ctl calls per 16 connections.
    case rotate
    /// A worker rotates to the tail of the wait queue after each accept batch and steps out while
    /// it holds more than its share of connections.
    case spread
}

/// The effective configuration of a herdd instance: defaults, then the config file, then the
/// command line. The same `key = value` vocabulary serves the config file, the command line
/// overrides and the master -> worker hand-over, so there is one parser for all three.
struct ServerConfig: Equatable, Sendable {
    var listen: [ListenSpec] = []
    /// listener name -> handler spec (`hello`, `health`, `debug`, `static:/dir`, `metrics`).
    var handlers: [String: String] = [:]
    var defaultHandler = AppIdentity.defaultHandler ?? "hello"
    var workers = ServerConfig.defaultWorkers(onlineCPUs: ServerConfig.onlineCPUs(), threadsPerWorker: AppIdentity.threadsPerWorker)
    var backlog: Int32 = 1024
    var acceptMode: AcceptMode = .exclusive
    var balance: BalancePolicy = .rotate
    var gracefulTimeout: Double = 30
    var timeout: Double = 30
    var maxRequests = 0
    var maxRequestsJitter = 0
    var keepAliveTimeout: Double = 5
    var headerTimeout: Double = 10
    /// The body's rule (RequestTimeouts): the longest silence between two reads, and the
    /// lowest average rate (bytes/s; 0 = none) after that much grace.
    var bodyTimeout: Double = 10
    var bodyMinRate = 500
    var maxBodyBytes = 1 << 20
    var upgradeTimeout: Double = 30
    var maxWorkers = ServerConfig.workerLimit
    /// Dynamic pool (Apache prefork style): keep at least `minSpare` idle workers (growing up to
    /// `maxWorkers`) and at most `maxSpare` (shrinking down to `workers`). 0 = off.
    var minSpare = 0
    var maxSpare = 0
    /// Accept-queue length that raises a warning when sustained for 3 s (0: half the limit).
    var backlogAlarm = 0
    /// One log entry per request (rate-limited); off by default.
    var accessLog = false
    /// Overload shedding (docs/overload.md): a request that waited longer than this many
    /// milliseconds before a worker could start it is answered 503 at once (0 = off).
    var maxQueueTimeMillis = 0
    /// Count a front proxy's `X-Request-Start` in the queue time (only behind a trusted proxy).
    var trustRequestStart = false
    /// Accept every queued connection per wakeup (until EAGAIN) instead of one (nginx's
    /// multi_accept). Off by default: one per wakeup leaves the next connection to wake another
    /// idle worker, which spreads a burst of connections, and saves the EAGAIN that ends a loop.
    var multiAccept = false
    /// TCP_DEFER_ACCEPT of 1 s on TCP listeners (nginx's `listen ... deferred`, Apache's
    /// `AcceptFilter http data`): a connection reaches the accept queue when its first bytes
    /// arrive, so a worker wakes once per connection with the request in, not once to accept
    /// and once more to read. A client that connects and stays silent is accepted after ~1 s
    /// (the kernel's first SYN-ACK retransmission) and then closed as idle (keepalive-timeout),
    /// as without it.
    var deferAccept = true
    /// TCP_NOTSENT_LOWAT in bytes on a connection once its socket was full (0 = the system's,
    /// net.ipv4.tcp_notsent_lowat): the kernel then holds at most this much beyond what it can
    /// send now (Connection+Writing.swift, docs/static.md). nil (`auto`, the default):
    /// `autoNotsentLowat` in a worker none of whose handlers may block, the system's in the
    /// others, where a handler that blocks stops the refills and a short queue would run dry.
    var notsentLowat: Int? = nil
    static let autoNotsentLowat = 16 * 1024
    /// Async requests in flight per worker at most (docs/async.md); at the bound the worker
    /// stops accepting and further requests on its connections wait for a place.
    var workerConcurrency = 1000
    /// Seconds an async request may take before its task is cancelled and the client gets 504.
    var asyncTimeout: Double = 60
    /// Log level of the master and the workers (a worker gets it with the other settings).
    var logLevel = Logger.Level.info

    struct ConfigError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    static let keys = [
        "listen", "handler", "default-handler", "workers", "backlog", "accept-mode", "graceful-timeout",
        "timeout", "max-requests", "max-requests-jitter", "keepalive-timeout", "header-timeout", "max-body",
        "upgrade-timeout", "backlog-alarm", "access-log", "min-spare", "max-spare", "max-workers", "balance",
        "multi-accept", "defer-accept", "notsent-lowat", "worker-concurrency", "async-timeout",
        "body-timeout", "body-min-rate", "log-level", "max-queue-time", "trust-request-start",
    ]

    /// Hard upper bound of the pool (the scoreboard is sized for it at start).
    static let workerLimit = 256

    /// Cross-setting checks, after every source was applied.
    func validated() throws -> ServerConfig {
        if workers > maxWorkers {
            throw ConfigError(message: "workers (\(workers)) is above max-workers (\(maxWorkers))")
        }
        if maxSpare > 0 && minSpare > maxSpare {
            throw ConfigError(message: "min-spare (\(minSpare)) is above max-spare (\(maxSpare))")
        }
        return self
    }

    static func onlineCPUs() -> Int {
        Sys.onlineProcessorCount() ?? 1
    }

    /// One worker per `threadsPerWorker` online CPUs, at least one: a worker that keeps an event
    /// loop of its own busy beside its loop (postgres-nio, AsyncHTTPClient) is two threads, and
    /// more busy threads than cores only queue on the run queue (docs/postgres.md, "Sizing").
    static func defaultWorkers(onlineCPUs: Int, threadsPerWorker: Int) -> Int {
        min(max(1, onlineCPUs / max(1, threadsPerWorker)), workerLimit)
    }

    /// Handler spec for a listener name.
    func handlerSpec(for name: String) -> String { handlers[name] ?? defaultHandler }

    /// Applies one `key = value` setting. `origin` names where it came from, for error messages.
    mutating func apply(key: String, value: String, origin: String) throws {
        func fail(_ why: String) -> ConfigError { ConfigError(message: "\(origin): \(key): \(why)") }
        func int(_ lo: Int, _ hi: Int) throws -> Int {
            guard let v = Int(value), v >= lo, v <= hi else { throw fail("expected an integer from \(lo) to \(hi), got '\(value)'") }
            return v
        }
        func onOff() throws -> Bool {
            switch value {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw fail("expected on or off, got '\(value)'")
            }
        }
        /// Bytes: an integer, optionally with k, m or g (KiB, MiB, GiB) as nginx writes sizes.
        func bytes(_ hi: Int) throws -> Int {
            var digits = Substring(value)
            var unit = 1
            switch digits.last {
            case "k", "K": unit = 1 << 10
            case "m", "M": unit = 1 << 20
            case "g", "G": unit = 1 << 30
            default: break
            }
            if unit > 1 { digits = digits.dropLast() }
            guard let v = Int(digits), v >= 0, v <= hi / unit else {
                throw fail("expected bytes (an integer up to \(hi), optionally with k, m or g), got '\(value)'")
            }
            return v * unit
        }
        func seconds() throws -> Double {
            guard let v = Double(value), v.isFinite, v > 0, v <= 86400 else {
                throw fail("expected seconds (a number > 0 and <= 86400), got '\(value)'")
            }
            return v
        }
        switch key {
        case "listen":
            do { listen.append(try ListenSpec(parsing: value)) } catch { throw fail("\(error)") }
        case "handler":
            guard let eq = value.firstIndex(of: "="), eq != value.startIndex, value.index(after: eq) != value.endIndex else {
                throw fail("expected LISTENER=HANDLER (e.g. http=static:/srv/www), got '\(value)'")
            }
            handlers[String(value[..<eq])] = String(value[value.index(after: eq)...])
        case "default-handler":
            guard !value.isEmpty else { throw fail("empty handler") }
            defaultHandler = value
        case "workers": workers = try int(1, ServerConfig.workerLimit)
        case "max-workers": maxWorkers = try int(1, ServerConfig.workerLimit)
        case "min-spare": minSpare = try int(0, ServerConfig.workerLimit)
        case "max-spare": maxSpare = try int(0, ServerConfig.workerLimit)
        case "backlog": backlog = Int32(try int(1, 1 << 20))
        case "accept-mode":
            guard let m = AcceptMode(rawValue: value) else { throw fail("expected exclusive or shared, got '\(value)'") }
            acceptMode = m
        case "balance":
            guard let b = BalancePolicy(rawValue: value) else { throw fail("expected hot, rotate or spread, got '\(value)'") }
            balance = b
        case "graceful-timeout": gracefulTimeout = try seconds()
        case "timeout": timeout = try seconds()
        case "max-requests": maxRequests = try int(0, Int(Int32.max))
        case "max-requests-jitter": maxRequestsJitter = try int(0, Int(Int32.max))
        case "keepalive-timeout": keepAliveTimeout = try seconds()
        case "header-timeout": headerTimeout = try seconds()
        case "max-body": maxBodyBytes = try bytes(1 << 40)
        case "log-level":
            guard let l = Logger.Level(rawValue: value) else {
                throw fail("expected trace, debug, info, notice, warning, error or critical, got '\(value)'")
            }
            logLevel = l
        case "body-timeout": bodyTimeout = try seconds()
        case "body-min-rate": bodyMinRate = try bytes(1 << 40)
        case "upgrade-timeout": upgradeTimeout = try seconds()
        case "backlog-alarm": backlogAlarm = try int(0, 1 << 30)
        case "access-log": accessLog = try onOff()
        case "multi-accept": multiAccept = try onOff()
        case "defer-accept": deferAccept = try onOff()
        case "notsent-lowat":
            if value == "auto" { notsentLowat = nil; break }
            guard let b = try? bytes(1 << 30) else {
                throw fail("expected auto or bytes (an integer up to \(1 << 30), optionally with k, m or g), got '\(value)'")
            }
            notsentLowat = b
        case "worker-concurrency": workerConcurrency = try int(1, 1_000_000)
        case "async-timeout": asyncTimeout = try seconds()
        case "max-queue-time": maxQueueTimeMillis = try int(0, 3_600_000)
        case "trust-request-start": trustRequestStart = try onOff()
        default:
            throw ConfigError(message: "\(origin): unknown setting '\(key)' (known: \(ServerConfig.keys.joined(separator: ", ")))")
        }
    }

    /// Parses a config file's text: `key = value` lines, `#` comments, blank lines ignored;
    /// `listen` and `handler` may repeat.
    mutating func apply(fileText: String, path: String) throws {
        var lineNo = 0
        for raw in fileText.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingWhitespace()
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError(message: "\(path):\(lineNo): expected 'key = value', got '\(trimmed)'")
            }
            let key = trimmed[..<eq].trimmingWhitespace()
            let value = trimmed[trimmed.index(after: eq)...].trimmingWhitespace()
            try apply(key: String(key), value: String(value), origin: "\(path):\(lineNo)")
        }
    }

    /// Reads and applies a config file.
    mutating func apply(filePath: String) throws {
        let text: String
        do { text = try readTextFile(filePath) } catch {
            throw ConfigError(message: "cannot read config file \(filePath): \(String(cString: strerror(error.errno)))")
        }
        try apply(fileText: text, path: filePath)
    }

    /// The settings as `key=value` strings: what the master passes to a worker on its command line.
    func serialized() -> [String] {
        var out: [String] = []
        for l in listen { out.append("listen=\(l)") }
        for (k, v) in handlers.sorted(by: { $0.key < $1.key }) { out.append("handler=\(k)=\(v)") }
        out += [
            "default-handler=\(defaultHandler)", "workers=\(workers)", "backlog=\(backlog)",
            "accept-mode=\(acceptMode.rawValue)", "balance=\(balance.rawValue)", "graceful-timeout=\(gracefulTimeout)", "timeout=\(timeout)",
            "max-requests=\(maxRequests)", "max-requests-jitter=\(maxRequestsJitter)",
            "keepalive-timeout=\(keepAliveTimeout)", "header-timeout=\(headerTimeout)", "max-body=\(maxBodyBytes)",
            "upgrade-timeout=\(upgradeTimeout)", "backlog-alarm=\(backlogAlarm)", "max-workers=\(maxWorkers)",
            "min-spare=\(minSpare)", "max-spare=\(maxSpare)", "access-log=\(accessLog ? "on" : "off")",
            "multi-accept=\(multiAccept ? "on" : "off")", "defer-accept=\(deferAccept ? "on" : "off")", "notsent-lowat=\(notsentLowat.map { "\($0)" } ?? "auto")",
            "worker-concurrency=\(workerConcurrency)", "async-timeout=\(asyncTimeout)",
            "body-timeout=\(bodyTimeout)", "body-min-rate=\(bodyMinRate)",
            "log-level=\(logLevel.rawValue)", "max-queue-time=\(maxQueueTimeMillis)",
            "trust-request-start=\(trustRequestStart ? "on" : "off")",
        ]
        return out
    }

    /// Inverse of `serialized()`.
    static func deserialize(_ items: [String]) throws -> ServerConfig {
        var c = ServerConfig()
        for item in items {
            guard let eq = item.firstIndex(of: "=") else { throw ConfigError(message: "bad setting '\(item)'") }
            try c.apply(key: String(item[..<eq]), value: String(item[item.index(after: eq)...]), origin: "worker argv")
        }
        return c
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> SubSequence {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return s
    }
}

/// Reads a whole (small, at most 16 MiB) file as UTF-8 text.
func readTextFile(_ path: String) throws(SysError) -> String {
    String(decoding: try Sys.readFile(path, limit: 16 << 20), as: UTF8.self)
}
