/// Rolling reload and its rollback, as decisions. The master re-reads the configuration and
/// rolls the workers; this records what to return to and says when the reload is over.
struct ReloadPolicy {
    /// What a rolling reload returns to when the new generation cannot start.
    struct Rollback {
        var config: ServerConfig
        var wanted: Int
        var generation: UInt64
    }

    enum Decision: Equatable { case none, complete, rollBack }

    /// A rolling reload is in progress (until the new generation serves or is rolled back).
    private(set) var reloading = false
    /// The last configuration that served: kept over reloads that follow each other before one
    /// completes, so a rollback returns to what was serving, not to a generation that never did.
    private(set) var rollback: Rollback? = nil

    /// A new configuration parsed: `serving` is what runs now.
    mutating func begin(serving: Rollback) {
        if rollback == nil { rollback = serving }
        reloading = true
    }

    /// What the supervision loop does this tick: finish the reload when the new generation
    /// serves in full and no old worker remains; roll back when new workers die at start.
    func decide(readyCurrent: Int, wanted: Int, oldRemaining: Int, newWorkersDieAtStart: Bool) -> Decision {
        guard reloading else { return .none }
        if readyCurrent >= wanted && oldRemaining == 0 { return .complete }
        if rollback != nil && newWorkersDieAtStart { return .rollBack }
        return .none
    }

    /// The reload is over (done or rolled back).
    mutating func end() {
        reloading = false
        rollback = nil
    }
}
