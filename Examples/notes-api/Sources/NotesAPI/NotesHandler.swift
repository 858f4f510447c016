import Foundation
import GRDB
import Herd

/// One note, as stored in SQLite and as sent in JSON.
public struct Note: Codable, Equatable, Sendable, FetchableRecord, MutablePersistableRecord {
    public var id: Int64?
    public var title: String
    public var body: String
    /// Seconds since the epoch.
    public var createdAt: Int64

    public static let databaseTableName = "note"

    enum CodingKeys: String, CodingKey {
        case id, title, body
        case createdAt = "created_at"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// A JSON API over a SQLite database:
///
///     GET    /notes?limit=N    200 {"notes": [...]} newest first (limit 1...100, default 50)
///     POST   /notes            201 the new note, Location: /notes/ID
///                              body {"title": "...", "body": "..."} (Content-Type: application/json)
///     GET    /notes/ID         200 the note, or 404
///     DELETE /notes/ID         204, or 404
///     GET    /health           200 {"status": "ok", "pid": ..., "worker": ..., "notes": N}
///
/// Every error is JSON too: `{"error": "not found", "status": 404}`.
///
/// Each worker process opens its own connection (herdd builds handlers in every worker); the
/// database is in WAL mode with a busy timeout, so the workers' writes queue instead of failing.
/// The queries block the worker while they run: that is what a prefork worker is for.
public final class NotesHandler: Handler, Sendable {
    let db: DatabaseQueue

    /// Opens (creating if needed) the database at `databasePath`.
    public init(databasePath: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.journalMode = .wal
        db = try DatabaseQueue(path: databasePath, configuration: config)
        // Several workers may start at once: the statement is idempotent.
        try db.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS note (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    title TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at INTEGER NOT NULL)
                """)
        }
    }

    public func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true)
        do {
            switch (request.method, segments.count, segments.first) {
            case ("GET", 1, "notes"), ("HEAD", 1, "notes"):
                return try list(query: request.query)
            case ("POST", 1, "notes"):
                return try create(request)
            case ("GET", 2, "notes"), ("HEAD", 2, "notes"):
                guard let id = Int64(segments[1]) else { return Self.error(404, "not found") }
                guard let note = try db.read({ try Note.fetchOne($0, key: id) }) else { return Self.error(404, "not found") }
                return Self.json(200, note)
            case ("DELETE", 2, "notes"):
                guard let id = Int64(segments[1]) else { return Self.error(404, "not found") }
                let deleted = try db.write { try Note.deleteOne($0, key: id) }
                return deleted ? HTTPResponse(status: 204) : Self.error(404, "not found")
            case ("GET", 1, "health"):
                let count = try db.read { try Note.fetchCount($0) }
                return Self.json(200, Health(status: "ok", pid: context.pid, worker: context.workerID, notes: count))
            case (_, 1, "notes"):
                return Self.methodNotAllowed("GET, HEAD, POST")
            case (_, 2, "notes"):
                return Self.methodNotAllowed("GET, HEAD, DELETE")
            case (_, 1, "health"):
                return Self.methodNotAllowed("GET")
            default:
                return Self.error(404, "not found")
            }
        } catch {
            return Self.error(500, "database error: \(error)")
        }
    }

    func list(query: String?) throws -> HTTPResponse {
        var limit = 50
        for pair in (query ?? "").split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard kv.first == "limit" else { continue }
            guard kv.count == 2, let n = Int(kv[1]), (1...100).contains(n) else {
                return Self.error(400, "limit must be an integer from 1 to 100")
            }
            limit = n
        }
        let notes = try db.read { db in
            try Note.order(Column("id").desc).limit(limit).fetchAll(db)
        }
        return Self.json(200, ["notes": notes])
    }

    struct NewNote: Decodable {
        var title: String
        var body: String?
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        let type = request.headers["Content-Type"]?.split(separator: ";").first?
            .trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            return Self.error(415, "Content-Type must be application/json")
        }
        let input: NewNote
        do {
            input = try JSONDecoder().decode(NewNote.self, from: Data(request.body))
        } catch {
            return Self.error(400, "invalid JSON: expected {\"title\": string, \"body\": string}")
        }
        let title = input.title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty, title.count <= 200 else {
            return Self.error(422, "title must have 1 to 200 characters")
        }
        var note = Note(id: nil, title: title, body: input.body ?? "", createdAt: Int64(time(nil)))
        try db.write { try note.insert($0) }
        var response = Self.json(201, note)
        response.headers.set("Location", "/notes/\(note.id ?? 0)")
        return response
    }

    struct Health: Encodable {
        var status: String
        var pid: Int32
        var worker: Int
        var notes: Int
    }

    struct ErrorBody: Encodable {
        var error: String
        var status: Int
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(value) else {
            return HTTPResponse.text(500, "{\"error\":\"cannot encode the response\",\"status\":500}\n",
                                     contentType: "application/json")
        }
        return HTTPResponse(status: status, headers: ["Content-Type": "application/json"],
                            body: .bytes(Array(data) + [0x0A]))
    }

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        json(status, ErrorBody(error: message, status: status))
    }

    static func methodNotAllowed(_ allow: String) -> HTTPResponse {
        var r = error(405, "method not allowed")
        r.headers.set("Allow", allow)
        return r
    }
}
