import HerdLibc
import Handlers
import HerdSys

/// The process entry of herdd, behind `HerdServer.main(handlers:)` of the Herd module (the API
/// a program uses: `import Herd`). It registers the handlers, then runs the master, a control
/// command or the worker role, as the command line asks.
public enum HerdEntry {
    /// Registers `handlers` (name to factory), then runs the role the command line asks for
    /// (the master and its subcommands, or a worker) and exits with its exit code.
    public static func main(handlers: [String: HandlerRegistry.Factory] = [:]) -> Never {
        for (name, factory) in handlers.sorted(by: { $0.key < $1.key }) {
            guard isValidName(name) else {
                refuse("herdd: cannot register handler '\(name)': names are non-empty, without ':', '=', ',' or spaces, and 'metrics' is reserved")
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
        Sys.exit(0)
    }

    /// Writes `message` and a newline to stderr and exits with 70 (EX_SOFTWARE): the program
    /// registered what cannot be registered, found before any logger or argument parser exists.
    package static func refuse(_ message: String) -> Never {
        let bytes = Array("\(message)\n".utf8)
        bytes.withUnsafeBytes { Sys.writeAll(STDERR_FILENO, $0) }
        Sys.exit(ExitStatus.software)
    }

    /// Can `name` be used in `--handler LISTENER=name:arg`?
    package static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name != metricsHandlerName else { return false }
        return !name.contains(where: { $0 == ":" || $0 == "=" || $0 == "," || $0.isWhitespace })
    }
}
