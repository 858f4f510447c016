// The same routes on Hummingbird 2 with its defaults: GET /notes/:id, POST /notes (the same
// NoteStore: GRDB, WAL, short-back-off busy handler), GET /json20. Usage: hb-notes PORT DB.
import Foundation
import Hummingbird
import NotesAPI

struct Item: ResponseEncodable {
    var id: Int
    var title: String
    var done: Bool
    var tags: [String]
}

struct NewNote: Decodable {
    var title: String
    var body: String?
}

extension Note: @retroactive ResponseEncodable {}

let args = CommandLine.arguments
let port = args.count > 1 ? Int(args[1]) ?? 8081 : 8081
let store = try NoteStore(path: args.count > 2 ? args[2] : "notes.sqlite")
let items = (1...20).map { Item(id: $0, title: "item number \($0)", done: $0 % 2 == 0, tags: ["a", "b"]) }

let router = Router()
router.get("json20") { _, _ in items }
router.get("notes/:id") { _, context -> Note in
    let id = try context.parameters.require("id", as: Int64.self)
    guard let note = try store.find(id) else { throw HTTPError(.notFound, message: "no note \(id)") }
    return note
}
router.post("notes") { request, context -> EditedResponse<Note> in
    let input = try await request.decode(as: NewNote.self, context: context)
    let note = try store.insert(title: input.title, body: input.body ?? "")
    return EditedResponse(status: .created, headers: [.location: "/notes/\(note.id ?? 0)"], response: note)
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
