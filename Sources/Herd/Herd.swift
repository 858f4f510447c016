// The module a program imports to become a herdd server: the entry point (HerdServer), the
// routing API (Router, RequestContext, HTTPError, middleware: Sources/Herd/Routing) and the
// handler API (Handler, HTTPRequest, HTTPResponse, ... from the Handlers module, re-exported so
// that `import Herd` is all it takes).
@_exported import Handlers
import HerdD

/// The entry point of herdd, for herdd itself and for a program of your own that embeds it.
///
/// A program gives its name, its version and its router, then hands the process over:
///
/// ```swift
/// import Herd
///
/// HerdServer.main(name: "notes-api", version: "1.0.0") { argument in
///     let store = try NoteStore(path: argument ?? "notes.sqlite")   // in each worker
///     return makeRouter(store: store)
/// }
/// ```
///
/// The program then *is* a herdd server named `notes-api`: `notes-api --listen 127.0.0.1:8080`
/// serves the router with no other flag; `ps` shows `notes-api: master` and
/// `notes-api: worker 0`; logs carry `SYSLOG_IDENTIFIER=notes-api`; `--help` and `--version`
/// are its own; `notes-api reload|upgrade|status` find the master through `/run/notes-api`
/// (the packaged unit's RuntimeDirectory). It has herdd's whole command line (`serve`,
/// `status`, `reload`, `upgrade`, every option and `--config FILE`), socket activation,
/// signals, hot upgrade, metrics and logs.
///
/// The same executable is also every worker: the master starts workers as
/// `/proc/self/exe worker ...`, and this function runs the worker role when it sees that
/// command line. Call it unconditionally, first thing, so that workers know the router too.
public enum HerdServer {
    /// Runs a program of your own whose listeners serve the router `makeRouter` builds; never
    /// returns.
    ///
    /// - Parameters:
    ///   - name: The program's name: process titles, logs, `--help`, `/run/NAME`, and the
    ///     handler name of the router in configuration (`--handler http=NAME:ARGUMENT`). Names
    ///     are non-empty, without `:`, `=`, `,` or spaces.
    ///   - version: Shown by `--version`, in the start-up log and in metrics.
    ///   - abstract: One line for `--help` (default: "NAME: an HTTP server on herdd ...").
    ///   - handlers: More handlers by name, for listeners that serve something else.
    ///   - threadsPerWorker: The threads each worker keeps busy: 1 (its loop) unless the program
    ///     runs an event loop of its own in every worker (a postgres-nio pool or an
    ///     AsyncHTTPClient on a `MultiThreadedEventLoopGroup` of one thread: 2). The default
    ///     `--workers` is the online CPUs divided by it, at least 1, so that the workers' busy
    ///     threads match the cores (docs/postgres.md, "Sizing"). 1...64.
    ///   - validate: Checks the router's argument (the text after `NAME:`, nil without one) in
    ///     the master, before any worker starts; throw `HandlerSpecError` to refuse it (the
    ///     start fails with exit code 78 and the message). It must not open resources.
    ///   - makeRouter: Builds the router in each worker, after the worker started: open
    ///     per-process resources (database connections) here. Never run in the master.
    public static func main(name: String, version: String, abstract: String? = nil,
                            handlers: [String: HandlerRegistry.Factory] = [:], threadsPerWorker: Int = 1,
                            validate: @escaping HandlerRegistry.Validator = { _ in },
                            router makeRouter: @escaping @Sendable (String?) throws -> Router) -> Never {
        main(name: name, version: version, abstract: abstract, handlers: handlers, threadsPerWorker: threadsPerWorker,
             validate: validate) { argument in
            try makeRouter(argument).handler()
        }
    }

    /// Like ``main(name:version:abstract:handlers:threadsPerWorker:validate:router:)`` with a
    /// `Handler` of your own instead of a router.
    public static func main(name: String, version: String, abstract: String? = nil,
                            handlers: [String: HandlerRegistry.Factory] = [:], threadsPerWorker: Int = 1,
                            validate: @escaping HandlerRegistry.Validator = { _ in },
                            handler makeHandler: @escaping HandlerRegistry.Factory) -> Never {
        if let message = refusal(name: name, threadsPerWorker: threadsPerWorker) {
            HerdEntry.refuse(message)
        }
        AppIdentity.set(name: name, version: version,
                        abstract: abstract ?? "\(name): an HTTP server on herdd (prefork workers, systemd socket activation).",
                        defaultHandler: name, threadsPerWorker: threadsPerWorker)
        HandlerRegistry.register(name, validator: validate, makeHandler)
        HerdEntry.main(handlers: handlers)
    }

    /// Why `main` refuses `name` or `threadsPerWorker` (it exits with 70 and this message), or nil.
    package static func refusal(name: String, threadsPerWorker: Int) -> String? {
        guard HerdEntry.isValidName(name) else {
            return "\(name): the program's name must be non-empty, without ':', '=', ',' or spaces, and not 'metrics'"
        }
        guard (1...64).contains(threadsPerWorker) else {
            return "\(name): threadsPerWorker must be 1...64, not \(threadsPerWorker)"
        }
        return nil
    }

    /// Registers `handlers`, then runs the role the command line asks for (the master and its
    /// subcommands, or a worker) as herdd: the program's name and help stay herdd's, and a
    /// listener serves `hello` unless configured otherwise. Never returns.
    ///
    /// A factory receives the argument of the spec (`api:ARGUMENT`, nil without one) and may
    /// throw `HandlerSpecError` to refuse it. It runs in the master once per listener that uses
    /// it (to check the spec) and in every worker at start. `metrics` is the master's own
    /// handler and cannot be registered; names must not contain `:`, `=`, `,` or spaces.
    ///
    /// - Parameter handlers: Handler factories by name; they take precedence over the built-in
    ///   handlers (`hello`, `health`, `debug`, `static`) of the same name.
    public static func main(handlers: [String: HandlerRegistry.Factory] = [:]) -> Never {
        HerdEntry.main(handlers: handlers)
    }
}
