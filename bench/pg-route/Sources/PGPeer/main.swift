import Foundation
import Hummingbird
import Logging
import PostgresNIO

// GET /todos/:id on Hummingbird 2 with one postgres-nio pool of TODOS_PG_POOL connections (the
// herdd side has one pool per worker). Environment as Examples/todos-pg's.
//   PGPeer PORT
struct Todo: ResponseEncodable { var id: Int; var title: String; var done: Bool }

let env = ProcessInfo.processInfo.environment
let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8080 : 8080
var logger = Logger(label: "pg-peer")
logger.logLevel = .warning
var configuration = PostgresClient.Configuration(
    unixSocketPath: "\(env["TODOS_PG_HOST"] ?? "/run/postgresql")/.s.PGSQL.\(env["TODOS_PG_PORT"] ?? "5432")",
    username: env["TODOS_PG_USER"] ?? "todos", password: nil, database: env["TODOS_PG_DATABASE"] ?? "todos")
configuration.options.maximumConnections = Int(env["TODOS_PG_POOL"] ?? "16") ?? 16
// postgres-nio's defaults unless the run asks for todos-pg's fixed pool (bench/pg-route/run --peer-fixed-pool).
if let minimum = env["TODOS_PG_POOL_MIN"].flatMap({ Int($0) }) { configuration.options.minimumConnections = minimum }
if let seconds = env["TODOS_PG_KEEPALIVE"].flatMap({ Int($0) }) {
    configuration.options.keepAliveBehavior = seconds > 0 ? .init(frequency: .seconds(seconds)) : nil
}
let db = PostgresClient(configuration: configuration, backgroundLogger: logger)

let router = Router()
router.get("/todos/:id") { _, context -> Todo in
    let id = try context.parameters.require("id", as: Int.self)
    let rows = try await db.query("SELECT id, title, done FROM todos WHERE id = \(id)")
    for try await (id, title, done) in rows.decode((Int, String, Bool).self) {
        return Todo(id: id, title: title, done: done)
    }
    throw HTTPError(.notFound)
}
var app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
app.addServices(db)
try await app.runService()
