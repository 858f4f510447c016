import Synchronization

/// The program's own name: "herdd", or the name an application gave `HerdServer.main(name:)`.
/// It shows in process titles, logs (SYSLOG_IDENTIFIER), `--help` and the default runtime
/// directory (/run/NAME). Set once at start, before any of those is read.
package enum ProgramName {
    private static let value = Mutex("herdd")

    /// The current name.
    package static var current: String {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
