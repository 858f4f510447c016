import Foundation
import GRDB

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

/// The notes database of one worker process: each worker opens its own connection (the router
/// is built in every worker, never in the master), in WAL mode so readers never wait.
///
/// Writers of different workers take turns on SQLite's file lock. SQLite's own busy timeout
/// sleeps in steps of up to 100 ms (1, 2, 5, 10, ... 100 ms), so a write that finds the lock
/// taken for 50 µs may sleep tens of milliseconds: that made POST's p99 3x Hummingbird's.
/// The busy handler here retries after 50 µs, doubling up to 1 ms, for about 5 s in all:
/// a waiting writer gets the lock within about a millisecond of its release.
public final class NoteStore: Sendable {
    let db: DatabaseQueue

    /// Where the database is when the command line does not say: the unit's StateDirectory
    /// (`$STATE_DIRECTORY/notes.sqlite`), else `notes.sqlite` in the working directory.
    public static var defaultPath: String {
        let state = ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first
        return state.map { "\($0)/notes.sqlite" } ?? "notes.sqlite"
    }

    /// `path`, or an error for an empty one or one whose directory does not exist (the
    /// master's check: it opens nothing).
    public static func validate(path: String) throws -> String {
        guard !path.isEmpty else { throw StoreError("needs a database path: notes-api:/path/to/notes.sqlite") }
        let dir = (path as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir, isDirectory: &isDir), isDir.boolValue else {
            throw StoreError("the directory of '\(path)' does not exist")
        }
        return path
    }

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws {
        var config = Configuration()
        config.journalMode = .wal
        config.busyMode = .callback { tries in
            usleep(UInt32(min(50 << min(tries, 5), 1000)))
            return tries < 5_100  // about 5 s of 1 ms naps
        }
        db = try NoteStore.open(path, config)
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

    /// Two workers that open a new file at the same moment race for the switch to WAL, and the
    /// `journal_mode` pragma can answer SQLITE_BUSY without calling the busy handler (seen: one
    /// worker exited at start with "database is locked - while executing PRAGMA journal_mode").
    /// The open is retried then, with short naps, for about 5 s.
    private static func open(_ path: String, _ config: Configuration) throws -> DatabaseQueue {
        var tries = 0
        while true {
            do { return try DatabaseQueue(path: path, configuration: config) } catch let error as DatabaseError
                where error.resultCode == .SQLITE_BUSY && tries < 500 {
                tries += 1
                usleep(10_000)
            }
        }
    }

    public func latest(limit: Int) throws -> [Note] {
        try db.read { try Note.order(Column("id").desc).limit(limit).fetchAll($0) }
    }

    public func find(_ id: Int64) throws -> Note? {
        try db.read { try Note.fetchOne($0, key: id) }
    }

    public func insert(title: String, body: String) throws -> Note {
        var note = Note(id: nil, title: title, body: body, createdAt: Int64(Date().timeIntervalSince1970))
        try db.write { try note.insert($0) }
        return note
    }

    public func delete(_ id: Int64) throws -> Bool {
        try db.write { try Note.deleteOne($0, key: id) }
    }
}

/// A database path the master refused.
public struct StoreError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
