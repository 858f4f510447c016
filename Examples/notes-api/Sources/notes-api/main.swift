// notes-api: herdd with one more handler. Every herdd option works (`notes-api --help`):
//
//   notes-api --listen 127.0.0.1:8080 --handler http=notes:/var/lib/notes/notes.sqlite
//
// or `handler = http=notes:/var/lib/notes/notes.sqlite` in a --config file. The text after
// "notes:" is the database path. The same executable runs as the master and as every worker
// (the master starts workers as /proc/self/exe worker ...), so the handler is registered here,
// before anything else, in every process.
import Herd
import NotesAPI

HerdServer.main(handlers: [
    "notes": { argument in
        guard let path = argument, !path.isEmpty else {
            throw HandlerSpecError(spec: "notes", message: "handler 'notes' needs a database path: notes:/path/to/notes.sqlite")
        }
        return try NotesHandler(databasePath: path)
    },
])
