// The module a program imports to become a herdd server: the entry point (HerdServer) and the
// handler API (Handler, HTTPRequest, HTTPResponse, BodyStream, HandlerContext, HandlerRegistry,
// from the Handlers module, re-exported so that `import Herd` is all it takes).
@_exported import Handlers
import HerdD

/// The entry point of herdd, for herdd itself and for a program of your own that embeds it.
///
/// A program registers its handlers, then hands the process to herdd:
///
/// ```swift
/// import Herd
///
/// HerdServer.main(handlers: [
///     "api": { argument in try APIHandler(databasePath: argument ?? "/var/lib/app/app.sqlite") },
/// ])
/// ```
///
/// The program then has herdd's whole command line (`serve`, `status`, `reload`, `upgrade`, every
/// option and `--config FILE`), socket activation, signals, hot upgrade, metrics and logs, and a
/// listener is given a registered handler by name: `--handler http=api:/srv/app.sqlite` or
/// `handler = http=api:/srv/app.sqlite` in the config file.
///
/// The same executable is also every worker: the master starts workers as
/// `/proc/self/exe worker ...`, and this function runs the worker role when it sees that command
/// line. Register handlers before calling it, unconditionally, so that workers know them too.
public enum HerdServer {
    /// Registers `handlers`, then runs the role the command line asks for (the master and its
    /// subcommands, or a worker) and exits the process with its exit code. Never returns.
    ///
    /// A factory receives the argument of the spec (`api:ARGUMENT`, nil without one) and may
    /// throw `HandlerSpecError` to refuse it. It runs in the master once per listener that uses
    /// it (a bad spec stops the start with exit code 78 and the message) and in every worker at
    /// start: open per-process resources (database connections, files) in the factory or
    /// lazily, never share them between processes. `metrics` is the master's own handler and
    /// cannot be registered; names must not contain `:`, `=`, `,` or spaces.
    ///
    /// - Parameter handlers: Handler factories by name; they take precedence over the built-in
    ///   handlers (`hello`, `health`, `debug`, `static`) of the same name.
    public static func main(handlers: [String: HandlerRegistry.Factory] = [:]) -> Never {
        HerdEntry.main(handlers: handlers)
    }
}
