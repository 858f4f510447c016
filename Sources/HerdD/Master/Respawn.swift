/// Respawn backoff and crash-loop detection: which slot died how soon after its start, and what
/// follows from it. A plain value: the master feeds it exits and the clock (monotonic ns).
struct RespawnPolicy: Sendable {
    /// A crash within this time of the spawn counts as a death at start.
    static let fastDeathNanos: UInt64 = 1_000_000_000
    /// Deaths at start in a row, per slot, after which the slot counts as looping.
    static let crashLoopThreshold = 5
    /// Backoff: 100 ms doubled per death at start in a row, at most 10 s.
    static let firstDelayNanos: UInt64 = 100_000_000
    static let maxDelayNanos: UInt64 = 10_000_000_000

    /// Deaths at start in a row, per scoreboard slot.
    private(set) var fastDeaths: [Int: Int] = [:]

    /// A worker of the current generation that nobody asked to leave exited. Returns the delay
    /// before its slot is respawned: 0 unless it crashed right after it started.
    mutating func delayAfterExit(slot: Int, crashed: Bool, spawnedAt: UInt64, now: UInt64) -> UInt64 {
        if crashed && now - spawnedAt < RespawnPolicy.fastDeathNanos {
            let n = (fastDeaths[slot] ?? 0) + 1
            fastDeaths[slot] = n
            return min(RespawnPolicy.firstDelayNanos << UInt64(min(n - 1, 7)), RespawnPolicy.maxDelayNanos)
        }
        fastDeaths[slot] = 0
        return 0
    }

    /// Every wanted slot dies at start and no worker of the current generation serves: give up.
    func isCrashLoop(wanted: Int, serving: Int) -> Bool {
        let loopingSlots = fastDeaths.values.filter { $0 >= RespawnPolicy.crashLoopThreshold }.count
        return loopingSlots >= wanted && serving == 0
    }

    /// During a reload: the new generation's workers die right after they start (roll back).
    var newWorkersDieAtStart: Bool {
        fastDeaths.values.contains(where: { $0 >= 3 })
    }

    /// A new generation starts (reload) or the old one returns (rollback): a fresh count.
    mutating func reset() { fastDeaths.removeAll() }
}
