import HerdLibc
import Synchronization
import HerdSys

/// A handler spec that cannot be turned into a handler.
public struct HandlerSpecError: Error, CustomStringConvertible, Sendable {
    /// The spec as written (`static:relative/dir`).
    public let spec: String
    /// What is wrong with it, for the operator (herdd prints it and exits with 78).
    public let message: String

    /// An error about `spec`; throw it from a factory to refuse an argument.
    public init(spec: String, message: String) {
        self.spec = spec
        self.message = message
    }

    /// The message.
    public var description: String { message }
}

/// Builds handlers from command-line specs: `hello`, `health`, `debug`, `static:/abs/dir`, or a
/// name added with `register`. A spec is `name` or `name:argument` (split at the first ':').
/// (`metrics` is not here: the executable serves it itself.)
public enum HandlerRegistry {
    /// Builds a handler from the argument of its spec (the text after the first ':', nil when
    /// there is none). Throw ``HandlerSpecError`` (or any error) to refuse the argument.
    public typealias Factory = @Sendable (String?) throws -> any Handler

    /// The handlers herdd has without registration.
    public static var builtInNames: [String] { ["hello", "health", "debug", "static"] }

    /// Checks the argument of a spec without building anything (the master's check); throw
    /// ``HandlerSpecError`` to refuse it.
    public typealias Validator = @Sendable (String?) throws -> Void

    /// A registered handler: how to build it (in each worker) and how to check its argument
    /// (in the master; nil: by building it, as for built-ins).
    struct Entry {
        var factory: Factory
        var validator: Validator?
    }

    /// User-registered factories; they take precedence over built-ins of the same name.
    private static let custom = Mutex<[String: Entry]>([:])

    /// Adds (or replaces) a handler factory. The factory receives the text after ':' or nil.
    /// The master checks a spec by building the handler once (and dropping it); give a
    /// `validator` to check it without building, when building opens resources.
    public static func register(_ name: String, validator: Validator? = nil, _ factory: @escaping Factory) {
        custom.withLock { $0[name] = Entry(factory: factory, validator: validator) }
    }

    /// Checks a spec as the master does before it starts workers: a registered validator when
    /// there is one, else by building the handler. Throws what `make` would.
    public static func validate(_ spec: String) throws {
        let (name, arg) = split(spec)
        if let validator = custom.withLock({ $0[name]?.validator }) { return try validator(arg) }
        _ = try make(spec)
    }

    /// `name:argument` split at the first ':' (argument nil without one).
    static func split(_ spec: String) -> (name: String, argument: String?) {
        guard let colon = spec.firstIndex(of: ":") else { return (spec, nil) }
        return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
    }

    /// Names of all handlers `make` knows, built-ins first.
    public static var knownNames: [String] {
        let extra = custom.withLock { Array($0.keys) }.filter { !builtInNames.contains($0) }.sorted()
        return builtInNames + extra
    }

    /// Builds the handler a spec names (`name` or `name:argument`): a registered factory, else
    /// a built-in; throws ``HandlerSpecError`` for unknown names and bad arguments.
    public static func make(_ spec: String) throws -> any Handler {
        let (name, arg) = split(spec)
        if let factory = custom.withLock({ $0[name]?.factory }) { return try factory(arg) }

        func noArg(_ h: any Handler) throws -> any Handler {
            guard arg == nil else {
                throw HandlerSpecError(spec: spec, message: "handler '\(name)' takes no argument (got '\(spec)')")
            }
            return h
        }
        switch name {
        case "hello": return try noArg(HelloHandler())
        case "health": return try noArg(HealthHandler())
        case "debug": return try noArg(DebugHandler())
        case "static":
            guard let arg, !arg.isEmpty else {
                throw HandlerSpecError(spec: spec, message: "handler 'static' needs a directory: static:/abs/dir")
            }
            let dir: String, options: StaticOptions
            do { (dir, options) = try StaticOptions.parse(arg) } catch {
                throw HandlerSpecError(spec: spec, message: error.message)
            }
            guard dir.hasPrefix("/") else {
                throw HandlerSpecError(spec: spec, message: "static root must be an absolute path: '\(dir)'")
            }
            guard let st = try? Sys.pathStat(dir) else {
                throw HandlerSpecError(spec: spec, message: "static root '\(dir)' does not exist or is not accessible")
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw HandlerSpecError(spec: spec, message: "static root '\(dir)' is not a directory")
            }
            return StaticHandler(root: dir, options: options)
        default:
            let known = knownNames.map { $0 == "static" ? "static:/abs/dir" : $0 }.joined(separator: ", ")
            throw HandlerSpecError(spec: spec, message: "unknown handler '\(spec)'; known handlers: \(known)")
        }
    }
}
