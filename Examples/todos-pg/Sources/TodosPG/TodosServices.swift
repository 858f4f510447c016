import AsyncHTTPClient
import Herd
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// What the routes of one worker use: its own PostgreSQL pool and the shared HTTP client.
///
/// One `PostgresClient` (a connection pool) per worker, made when the worker builds its router
/// (after it started; never in the master, so no connection crosses a fork or an upgrade).
/// Its `run()` task drives the pool for the worker's life. It runs on the global concurrent
/// executor, not on the worker's loop: it only awaits (its sockets live on NIO's event loop
/// threads), and a task on the loop executor would count as nothing the worker knows of.
/// When the worker has drained it exits its process; the task and the connections end with
/// it (the kernel closes the sockets; PostgreSQL logs nothing worse than a client gone).
public struct TodosServices: Sendable {
    public let postgres: PostgresClient
    public let http: HTTPClient
    public let upstream: String?
    let logger: Logger

    /// The event loop of the worker's pool: one thread. PostgresClient's default is NIO's
    /// singleton group, a thread per core, made in every worker process: with 2 workers on 2
    /// cores, 4 NIO threads beside the 2 worker loops, each query's answer crossing threads
    /// on an oversubscribed machine (bench/pg-route: docs/postgres.md).
    ///
    /// That thread is also the process's Swift global concurrent executor (NIO's hook): the
    /// pool's `run()` task and its timers (an idle timer started at each release, cancelled at
    /// the next lease) would otherwise run on the global pool's own threads, two more per core
    /// in every worker, woken several times per query (measured: docs/postgres.md).
    static let eventLoops: MultiThreadedEventLoopGroup = {
        NIOSingletons.groupLoopCountSuggestion = 1
        // false only where the hook is missing (then the global pool stays Dispatch's): not an error.
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        return MultiThreadedEventLoopGroup.singleton
    }()

    /// Opens the worker's pool (connections are made on the first queries, up to poolSize).
    public static func start(_ config: TodosConfig) -> TodosServices {
        var logger = Logger(label: "todos-pg")
        logger.logLevel = .warning
        var configuration: PostgresClient.Configuration
        if config.host.hasPrefix("/") {
            // Debian's server listens on DIR/.s.PGSQL.PORT.
            configuration = .init(unixSocketPath: "\(config.host)/.s.PGSQL.\(config.port)", username: config.user,
                                  password: nil, database: config.database)
        } else {
            configuration = .init(host: config.host, port: config.port, username: config.user, password: nil,
                                  database: config.database, tls: .disable)
        }
        configuration.options.maximumConnections = config.poolSize
        // A fixed pool and no keep-alive by default: postgres-nio's pool starts a keep-alive timer
        // (30 s) and, above `minimumConnections`, an idle timer (60 s) at every release of a
        // connection, and cancels them at the next lease. A cancelled Task.sleep leaves its
        // Dispatch timer armed until the deadline, so at 3,000 queries/s a worker carried ~300,000
        // dead timers (RSS 38 -> 90 MB in a minute), and Dispatch's timer and pool threads fired
        // them on the worker's 2 cores: p99 10 ms in the first 20 s, 40-340 ms a minute later
        // (docs/postgres.md). With both off, a release schedules nothing.
        configuration.options.minimumConnections = config.poolMinimum
        configuration.options.keepAliveBehavior = config.keepAliveSeconds > 0
            ? .init(frequency: .seconds(config.keepAliveSeconds)) : nil
        let client = PostgresClient(configuration: configuration, eventLoopGroup: eventLoops, backgroundLogger: logger)
        Task.detached { await client.run() }
        return TodosServices(postgres: client, http: HTTPClient.shared, upstream: config.upstream, logger: logger)
    }
}
