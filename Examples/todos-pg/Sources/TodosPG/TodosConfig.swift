import Foundation
import Herd

/// Where the database and the upstream are, from the environment (main.swift lists the names).
public struct TodosConfig: Sendable {
    /// A unix socket directory (starts with "/") or a host name or address.
    public var host: String
    public var port: Int
    public var user: String
    public var database: String
    /// Connections per worker.
    public var poolSize: Int
    /// Connections each worker keeps open when idle (default: all of `poolSize`, a fixed pool).
    /// A connection above it gets an idle timer at every release (TodosServices says why that costs).
    public var poolMinimum: Int
    /// Seconds between keep-alive queries on an idle connection; 0 (the default): none.
    public var keepAliveSeconds: Int
    /// "127.0.0.1:PORT" for GET /proxy/**, or nil (the route then answers 503).
    public var upstream: String?

    /// Reads and checks the configuration; opens nothing (the master calls it too).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> TodosConfig {
        let port = Int(env["TODOS_PG_PORT"] ?? "5432")
        let pool = Int(env["TODOS_PG_POOL"] ?? "8")
        guard let port, (1...65535).contains(port) else { throw HandlerSpecError(spec: "todos-pg", message: "TODOS_PG_PORT: not a port number") }
        guard let pool, (1...256).contains(pool) else { throw HandlerSpecError(spec: "todos-pg", message: "TODOS_PG_POOL: 1...256 connections") }
        let minimum = Int(env["TODOS_PG_POOL_MIN"] ?? String(pool))
        guard let minimum, (0...pool).contains(minimum) else {
            throw HandlerSpecError(spec: "todos-pg", message: "TODOS_PG_POOL_MIN: 0...TODOS_PG_POOL (\(pool)) connections")
        }
        let keepAlive = Int(env["TODOS_PG_KEEPALIVE"] ?? "0")
        guard let keepAlive, (0...86_400).contains(keepAlive) else {
            throw HandlerSpecError(spec: "todos-pg", message: "TODOS_PG_KEEPALIVE: 0 (off) ... 86400 seconds")
        }
        let upstream = env["TODOS_UPSTREAM"].flatMap { $0.isEmpty ? nil : $0 }
        if let upstream, upstream.split(separator: ":").count != 2 {
            throw HandlerSpecError(spec: "todos-pg", message: "TODOS_UPSTREAM: HOST:PORT, not \(upstream)")
        }
        return TodosConfig(host: env["TODOS_PG_HOST"] ?? "/run/postgresql", port: port,
                           user: env["TODOS_PG_USER"] ?? "todos", database: env["TODOS_PG_DATABASE"] ?? "todos",
                           poolSize: pool, poolMinimum: minimum, keepAliveSeconds: keepAlive, upstream: upstream)
    }
}
