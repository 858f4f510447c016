// notes-api's router plus GET /json20 (20 items encoded, no I/O), on herdd.
import Herd
import NotesAPI

struct Item: Encodable {
    var id: Int
    var title: String
    var done: Bool
    var tags: [String]
}

let items = (1...20).map { Item(id: $0, title: "item number \($0)", done: $0 % 2 == 0, tags: ["a", "b"]) }

HerdServer.main(name: "herd-notes", version: "0.0.0") { path in
    let router = makeNotesRouter(store: try NoteStore(path: path ?? NoteStore.defaultPath))
    router.get("json20", mayBlock: false) { _, _ in items }
    return router
}
