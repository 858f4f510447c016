import AsyncHTTPClient
import Herd
import PostgresNIO

/// One todo, as stored and as sent.
public struct Todo: Codable, Sendable, ResponseEncodable {
    public var id: Int
    public var title: String
    public var done: Bool
}

/// The body of POST /todos.
struct NewTodo: Decodable {
    var title: String
    var done: Bool?
}

/// The routes: sync where nothing is awaited (/health), async elsewhere. Errors: HTTPError
/// for the client's mistakes; a database or upstream failure is any other error, so a 500
/// with the request id, logged.
public func makeTodosRouter(_ services: TodosServices) -> Router {
    let router = Router()
    router.add(middleware: RequestIDMiddleware())
    let db = services.postgres

    router.get("health", mayBlock: false) { _, _ in "ok\n" }

    // A primary-key read: the bench's postgres route.
    router.get("todos/:id") { _, context async throws -> Todo in
        let id = try context.parameters.require("id", as: Int.self)
        let rows = try await db.query("SELECT id, title, done FROM todos WHERE id = \(id)", logger: context.logger)
        for try await (id, title, done) in rows.decode((Int, String, Bool).self) {
            return Todo(id: id, title: title, done: done)
        }
        throw HTTPError(.notFound, message: "no todo \(id)")
    }

    router.post("todos") { request, context async throws -> EditedResponse<Todo> in
        let new = try request.decode(as: NewTodo.self, context: context)
        guard !new.title.isEmpty, new.title.utf8.count <= 500 else {
            throw HTTPError(.unprocessableContent, message: "title: 1...500 bytes")
        }
        let done = new.done ?? false
        let rows = try await db.query("INSERT INTO todos (title, done) VALUES (\(new.title), \(done)) RETURNING id",
                                      logger: context.logger)
        for try await id in rows.decode(Int.self) {
            return EditedResponse(status: .created, headers: ["Location": "/todos/\(id)"],
                                  response: Todo(id: id, title: new.title, done: done))
        }
        throw HTTPError(.internalServerError, message: "insert returned no id")
    }

    // A request that stays inside `await` for 200 ms of database time (drain and upgrade tests).
    router.get("slow") { _, context async throws -> String in
        // Read to the end: `query` returns at the row description, before pg_sleep is over.
        for try await _ in try await db.query("SELECT pg_sleep(0.2)", logger: context.logger) {}
        return "slept\n"
    }

    // The upstream over AsyncHTTPClient: GET /proxy/a/b -> GET http://UPSTREAM/a/b.
    router.get("proxy/**") { _, context async throws -> HTTPResponse in
        guard let upstream = services.upstream else { throw HTTPError(.serviceUnavailable, message: "no upstream configured") }
        let rest = context.parameters.getCatchAll().joined(separator: "/")
        let upstreamRequest = HTTPClientRequest(url: "http://\(upstream)/\(rest)")
        let response = try await services.http.execute(upstreamRequest, timeout: .seconds(5), logger: context.logger)
        let body = try await response.body.collect(upTo: 1 << 20)
        var headers: HTTPHeaders = [:]
        if let type = response.headers.first(name: "Content-Type") { headers.set("Content-Type", type) }
        return HTTPResponse(status: Int(response.status.code), headers: headers,
                            body: .bytes(Array(body.readableBytesView)))
    }
    return router
}
