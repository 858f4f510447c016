import HerdSys
import Synchronization

/// What a program built on the Herd library says about itself (`HerdServer.main(name:version:...)`):
/// its version and one-line description for `--version` and `--help`, and the handler its
/// listeners get when the configuration names none. herdd itself sets nothing here.
package enum AppIdentity {
    struct State {
        var version: String?
        var abstract: String?
        var defaultHandler: String?
        /// CPU-busy threads per worker (its loop, plus event loops of its own): the default
        /// `--workers` is the online CPUs divided by it.
        var threadsPerWorker = 1
    }

    private static let state = Mutex(State())

    /// Sets the program's identity; call once, before the command line is parsed.
    package static func set(name: String, version: String?, abstract: String?, defaultHandler: String?,
                            threadsPerWorker: Int = 1) {
        ProgramName.current = name
        state.withLock {
            $0 = State(version: version, abstract: abstract, defaultHandler: defaultHandler, threadsPerWorker: threadsPerWorker)
        }
    }

    /// Whether a program gave its own name (else herdd's help and version apply).
    static var isApplication: Bool { state.withLock { $0.version != nil || $0.defaultHandler != nil } }
    static var version: String? { state.withLock { $0.version } }
    static var abstract: String? { state.withLock { $0.abstract } }
    static var defaultHandler: String? { state.withLock { $0.defaultHandler } }
    static var threadsPerWorker: Int { state.withLock { $0.threadsPerWorker } }
}
