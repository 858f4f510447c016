// notes-api: a JSON API over SQLite, served by herdd's master and prefork workers under its
// own name. With no flags it serves the API on 127.0.0.1:8080 with ./notes.sqlite (or
// $STATE_DIRECTORY/notes.sqlite under systemd):
//
//   notes-api --listen 127.0.0.1:8080 --workers 2
//   notes-api --handler http=notes-api:/var/lib/notes-api/notes.sqlite    (another database)
//
// Every herdd option works (`notes-api --help`). The same executable runs as the master and as
// every worker, so this runs first thing in every process; the router (and its database
// connection) is built in each worker, the master only checks the path.
import Herd
import NotesAPI

// The name older configurations use, `handler = http=notes:/path/notes.sqlite`: the same
// router, the path required; also checked in the master without opening the database.
HandlerRegistry.register("notes", validator: { path in _ = try NoteStore.validate(path: path ?? "") }) { path in
    try makeNotesRouter(store: NoteStore(path: NoteStore.validate(path: path ?? ""))).handler()
}

HerdServer.main(
    name: "notes-api", version: "1.0.0", abstract: "Notes JSON API over SQLite, on herdd.",
    validate: { path in _ = try NoteStore.validate(path: path ?? NoteStore.defaultPath) },
    router: { path in makeNotesRouter(store: try NoteStore(path: path ?? NoteStore.defaultPath)) })
