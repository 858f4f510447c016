import Glibc
import Handlers

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
    /// Registers `handlers` (name to factory, see ``HandlerRegistry/register(_:_:)``), then runs
    /// the role the command line asks for (the master and its subcommands, or a worker) and exits
    /// the process with its exit code.
    ///
    /// A factory runs in the master once per listener that uses it (to refuse a bad spec before
    /// any worker starts, exit code 78) and in every worker at start; open per-process resources
    /// (database connections, files) in the factory or lazily, never share them between
    /// processes. `metrics` is the master's own handler and cannot be registered.
    ///
    /// - Parameter handlers: Handler factories by name; they take precedence over the built-in
    ///   handlers (`hello`, `health`, `debug`, `static`) of the same name.
    public static func main(handlers: [String: HandlerRegistry.Factory] = [:]) -> Never {
        for (name, factory) in handlers.sorted(by: { $0.key < $1.key }) {
            guard isValidName(name) else {
                let message = Array("herdd: cannot register handler '\(name)': names are non-empty, without ':', '=', ',' or spaces, and 'metrics' is reserved\n".utf8)
                message.withUnsafeBytes { writeAll(STDERR_FILENO, $0) }
                exit(ExitStatus.software)
            }
            HandlerRegistry.register(name, factory)
        }
        let args = CommandLine.arguments
        // The worker role (argv[1] == "worker") is the master's private interface and is read by
        // hand (WorkerRole): a worker then never runs the argument parser, whose reflection
        // would touch (and keep resident) runtime code and metadata that serving does not need.
        if args.count > 1 && args[1] == WorkerRole.commandName {
            WorkerRole.main(Array(args.dropFirst(2)))
        }
        HerdCommand.main()
        exit(0)
    }

    /// Can `name` be used in `--handler LISTENER=name:arg`?
    static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name != metricsHandlerName else { return false }
        return !name.contains(where: { $0 == ":" || $0 == "=" || $0 == "," || $0.isWhitespace })
    }
}
