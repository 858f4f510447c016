import Handlers
import Testing
@testable import HerdD

@Suite struct ListenSpecTests {
    @Test func ipv4WithName() throws {
        let s = try ListenSpec(parsing: "127.0.0.1:9100,name=metrics")
        #expect(s.address == .ipv4("127.0.0.1", port: 9100))
        #expect(s.name == "metrics")
    }

    @Test func ipv6DefaultName() throws {
        let s = try ListenSpec(parsing: "[::1]:8080")
        #expect(s.address == .ipv6("::1", port: 8080))
        #expect(s.name == "http")
    }

    @Test func unixPath() throws {
        let s = try ListenSpec(parsing: "unix:/run/herdd.sock,name=app")
        #expect(s.address == .unix(path: "/run/herdd.sock"))
        #expect(s.name == "app")
    }

    @Test(arguments: [
        "localhost:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "256.1.1.1:80", "[::1]8080", "[zz]:80",
        "unix:relative.sock", "127.0.0.1:80,nam=x", "127.0.0.1:80,name=", "127.0.0.1:80,name=a:b", "",
    ])
    func rejects(_ text: String) {
        #expect(throws: ListenSpec.ParseError.self) { try ListenSpec(parsing: text) }
    }

    @Test func roundTripsThroughDescription() throws {
        for t in ["127.0.0.1:80,name=a", "[::1]:443,name=b", "unix:/tmp/x.sock,name=c"] {
            let s = try ListenSpec(parsing: t)
            #expect(try ListenSpec(parsing: s.description) == s)
        }
    }
}

@Suite struct ServerConfigTests {
    @Test func fileParsing() throws {
        var c = ServerConfig()
        try c.apply(fileText: """
            # comment
            workers = 3
            listen = 127.0.0.1:8081, name=http
            listen = 127.0.0.1:9100,name=metrics   # trailing comment
            handler = metrics=health
            accept-mode = shared

            graceful-timeout = 2.5
            """, path: "t.conf")
        #expect(c.workers == 3)
        #expect(c.listen.count == 2)
        #expect(c.handlerSpec(for: "metrics") == "health")
        #expect(c.handlerSpec(for: "other") == "hello")
        #expect(c.acceptMode == .shared)
        #expect(c.gracefulTimeout == 2.5)
    }

    @Test func errorsNameFileAndLine() {
        var c = ServerConfig()
        do {
            try c.apply(fileText: "workers = 2\nworkers = many\n", path: "/etc/herdd.conf")
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("/etc/herdd.conf:2"))
            #expect("\(error)".contains("workers"))
        }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(fileText: "bogus = 1", path: "x") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(fileText: "no equals sign", path: "x") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "timeout", value: "-1", origin: "x") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "workers", value: "0", origin: "x") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "accept-mode", value: "herd", origin: "x") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "handler", value: "=x", origin: "x") }
    }

    @Test func serializationRoundTrip() throws {
        var c = ServerConfig()
        try c.apply(key: "listen", value: "[::1]:81,name=a", origin: "t")
        try c.apply(key: "handler", value: "a=static:/srv/www", origin: "t")
        try c.apply(key: "workers", value: "7", origin: "t")
        try c.apply(key: "max-requests", value: "100", origin: "t")
        try c.apply(key: "keepalive-timeout", value: "0.5", origin: "t")
        #expect(try ServerConfig.deserialize(c.serialized()) == c)
    }

    @Test func commandLineReplacesFileListeners() throws {
        let c = try loadConfig(path: nil, overrides: [("listen", "127.0.0.1:1"), ("workers", "2")])
        #expect(c.listen.count == 1)
        #expect(c.workers == 2)
    }
}

@Suite struct JournalEncodingTests {
    @Test func fieldNames() {
        #expect(JournalEncoding.fieldName("event") == "HERDD_EVENT")
        #expect(JournalEncoding.fieldName("worker-id") == "HERDD_WORKER_ID")
    }

    @Test func fieldsCarryRoleWorkerAndMetadata() {
        let f = JournalEncoding.fields(message: "hi", priority: 6, role: "worker", workerID: 3,
                                       metadata: ["event": "ready", "generation": "2"])
        #expect(f.contains("MESSAGE=hi"))
        #expect(f.contains("PRIORITY=6"))
        #expect(f.contains("HERDD_ROLE=worker"))
        #expect(f.contains("HERDD_WORKER_ID=3"))
        #expect(f.contains("HERDD_EVENT=ready"))
        #expect(f.contains("HERDD_GENERATION=2"))
    }
}

@Suite struct WaitStatusTests {
    @Test func describes() {
        #expect(describeWaitStatus(3 << 8) == "exit 3")
        #expect(describeWaitStatus(9).hasPrefix("signal 9"))
    }
}

@Suite struct WorkerRoleArguments {
    /// What the master writes is what the worker reads back.
    @Test func roundTrip() throws {
        var config = ServerConfig()
        config.multiAccept = true
        let args = WorkerRole.Arguments(slot: 7, generation: 3, masterPID: 4242, scoreboardFD: 5,
                                        listenerNames: ["http", "metrics"], settings: config.serialized())
        #expect(args.commandLine.first == "worker")
        let back = try WorkerRole.parse(Array(args.commandLine.dropFirst()))
        #expect(back == args)
        #expect(try ServerConfig.deserialize(back.settings) == config)
    }

    @Test func badArgumentsAreNamed() {
        func reason(_ a: [String]) -> String {
            do { _ = try WorkerRole.parse(a); return "accepted" } catch { return "\(error)" }
        }
        #expect(reason(["--slot", "x"]).contains("'x' is not a number"))
        #expect(reason(["--slot"]).contains("--slot needs a value"))
        #expect(reason(["--slot", "1", "--generation", "1", "--master-pid", "1"]).contains("missing --scoreboard-fd"))
        #expect(reason(["--bogus"]).contains("unknown argument '--bogus'"))
        #expect(reason(["--slot", "1", "--generation", "1", "--master-pid", "1", "--scoreboard-fd", "4", "--"]) == "accepted")
    }

    @Test func asyncSettings() throws {
        var c = ServerConfig()
        #expect(c.workerConcurrency == 1000 && c.asyncTimeout == 60)
        try c.apply(key: "worker-concurrency", value: "8", origin: "test")
        try c.apply(key: "async-timeout", value: "2.5", origin: "test")
        let back = try ServerConfig.deserialize(c.serialized())
        #expect(back.workerConcurrency == 8 && back.asyncTimeout == 2.5)
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "worker-concurrency", value: "0", origin: "test") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "async-timeout", value: "-1", origin: "test") }
    }

    @Test func multiAcceptSetting() throws {
        #expect(ServerConfig().multiAccept == false)
        var c = ServerConfig()
        try c.apply(key: "multi-accept", value: "on", origin: "test")
        #expect(c.multiAccept)
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "multi-accept", value: "maybe", origin: "test") }
    }

    @Test func deferAcceptSetting() throws {
        #expect(ServerConfig().deferAccept)  // on by default, as Apache's AcceptFilter on Linux
        var c = ServerConfig()
        try c.apply(key: "defer-accept", value: "off", origin: "test")
        #expect(!c.deferAccept)
        #expect(try ServerConfig.deserialize(c.serialized()).deferAccept == false)
        do {
            try c.apply(key: "defer-accept", value: "1s", origin: "f.conf:3")
            Issue.record("accepted 1s")
        } catch {
            #expect("\(error)" == "f.conf:3: defer-accept: expected on or off, got '1s'")
        }
    }

    @Test func notsentLowatSetting() throws {
        #expect(ServerConfig().notsentLowat == nil)  // auto
        var c = ServerConfig()
        try c.apply(key: "notsent-lowat", value: "64k", origin: "test")
        #expect(c.notsentLowat == 65536)
        #expect(try ServerConfig.deserialize(c.serialized()).notsentLowat == 65536)
        try c.apply(key: "notsent-lowat", value: "0", origin: "test")  // the system's
        #expect(c.notsentLowat == 0)
        #expect(try ServerConfig.deserialize(c.serialized()).notsentLowat == 0)
        try c.apply(key: "notsent-lowat", value: "auto", origin: "test")
        #expect(c.notsentLowat == nil)
        #expect(try ServerConfig.deserialize(c.serialized()).notsentLowat == nil)
        for bad in ["2g", "-1", "16 k", "lots", "Auto"] {
            do {
                try c.apply(key: "notsent-lowat", value: bad, origin: "f.conf:7")
                Issue.record("accepted \(bad)")
            } catch {
                #expect("\(error)" == "f.conf:7: notsent-lowat: expected auto or bytes (an integer up to 1073741824, optionally with k, m or g), got '\(bad)'")
            }
        }
    }

    @Test func notsentLowatOfAWorker() throws {
        // auto: 16 KiB where no handler may block; none (the system's) in a worker that may
        // block, whose downloads would stall during a handler with a short queue. A value set
        // applies either way.
        func bound(_ specs: [String]) throws -> [Worker.BoundListener] {
            try specs.enumerated().map { Worker.BoundListener(fd: 3 + Int32($0.offset), name: "l\($0.offset)", handler: try HandlerRegistry.make($0.element)) }
        }
        let auto = ServerConfig()
        #expect(Worker.notsentLowat(auto, try bound(["static:/tmp", "hello"])) == 16384)
        #expect(Worker.notsentLowat(auto, try bound(["static:/tmp", "debug"])) == 0)
        var set = ServerConfig()
        try set.apply(key: "notsent-lowat", value: "32k", origin: "test")
        #expect(Worker.notsentLowat(set, try bound(["static:/tmp", "debug"])) == 32768)
        try set.apply(key: "notsent-lowat", value: "0", origin: "test")
        #expect(Worker.notsentLowat(set, try bound(["static:/tmp"])) == 0)
    }

    @Test func serializedKeysAreKnownOnce() throws {
        // Every key a worker receives is one the config knows, and each is sent once.
        let keys = ServerConfig().serialized().compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) }
        #expect(Set(keys).count == keys.count)
        #expect(Set(keys).isSubset(of: Set(ServerConfig.keys)))
        #expect(Set(ServerConfig.keys).count == ServerConfig.keys.count)
    }

    @Test func balanceRotate() throws {
        var c = ServerConfig()
        #expect(c.balance == .rotate)  // the default (issue 7: p99 at parity with nginx)
        try c.apply(key: "balance", value: "hot", origin: "test")
        #expect(c.balance == .hot)
        #expect(try ServerConfig.deserialize(c.serialized()).balance == .hot)
        do {
            try c.apply(key: "balance", value: "round-robin", origin: "f.conf:2")
            Issue.record("accepted round-robin")
        } catch {
            #expect("\(error)" == "f.conf:2: balance: expected hot, rotate or spread, got 'round-robin'")
        }
    }
}

@Suite struct DefaultWorkersTests {
    @Test func oneWorkerPerCPUForAProgramWithOneBusyThreadPerWorker() {
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 8, threadsPerWorker: 1) == 8)
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 1, threadsPerWorker: 1) == 1)
    }

    @Test func fewerWorkersWhenEachKeepsAnEventLoopOfItsOwnBusy() {
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 8, threadsPerWorker: 2) == 4)
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 3, threadsPerWorker: 2) == 1)
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 2, threadsPerWorker: 2) == 1)
    }

    @Test func neverBelowOneNorAboveTheLimit() {
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 1, threadsPerWorker: 4) == 1)
        #expect(ServerConfig.defaultWorkers(onlineCPUs: 1024, threadsPerWorker: 1) == ServerConfig.workerLimit)
    }
}
