import Foundation
import Herd

/// The notes JSON API:
///
///     GET    /notes?limit=N    200 {"notes": [...]} newest first (limit 1...100, default 50)
///     POST   /notes            201 the new note, Location: /notes/ID
///                              body {"title": "...", "body": "..."} (Content-Type: application/json)
///     GET    /notes/ID         200 the note, or 404
///     DELETE /notes/ID         204, or 404
///     GET    /health           200 {"status": "ok", "pid": ..., "worker": ...}
///
/// Errors are JSON (`{"error": "no note 7", "status": 404}`): the router's HTTPError answers.
public func makeNotesRouter(store: NoteStore) -> Router {
    let router = Router()
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: RequestLogMiddleware(.debug))

    // Answers at once: no dispatch hand-off for it, even though the other routes block.
    router.get("health", mayBlock: false) { _, context in
        Health(status: "ok", pid: context.pid, worker: context.workerID)
    }

    let notes = router.group("notes")
    notes.get { request, _ in
        let limit = request.uri.queryParameters.get("limit", as: Int.self) ?? 50
        guard (1...100).contains(limit) else {
            throw HTTPError(.badRequest, message: "limit must be an integer from 1 to 100")
        }
        return ["notes": try store.latest(limit: limit)]
    }
    notes.post { request, context in
        let input = try request.decode(as: NewNote.self, context: context)
        let title = input.title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(title.count) else {
            throw HTTPError(.unprocessableContent, message: "title must have 1 to 200 characters")
        }
        let note = try store.insert(title: title, body: input.body ?? "")
        return EditedResponse(status: .created, headers: ["Location": "/notes/\(note.id ?? 0)"], json: note)
    }
    notes.get(":id") { _, context in
        let id = try context.parameters.require("id", as: Int64.self)
        guard let note = try store.find(id) else { throw HTTPError(.notFound, message: "no note \(id)") }
        return note
    }
    notes.delete(":id") { _, context in
        let id = try context.parameters.require("id", as: Int64.self)
        guard try store.delete(id) else { throw HTTPError(.notFound, message: "no note \(id)") }
        return HTTPStatus.noContent
    }
    return router
}

struct NewNote: Decodable {
    var title: String
    var body: String?
}

struct Health: Encodable {
    var status: String
    var pid: Int32
    var worker: Int
}
