import HerdLibc

/// What the pool policies read of the scoreboard: one worker slot's state. The scoreboard in
/// shared memory is one; unit tests give a dictionary.
protocol SlotStateView {
    func state(_ slot: Int) -> Scoreboard.State
}

extension Scoreboard: SlotStateView {}

/// Pool sizing: the desired number of workers (TTIN/TTOU, min/max-spare dynamic pool) and the
/// plan that brings the running workers to it (spawn, retire surplus, roll a reload one worker
/// at a time). No syscalls: the master carries the plan out.
struct PoolPolicy: Sendable {
    /// Desired workers of the current generation.
    var wanted: Int
    /// When the dynamic pool last changed `wanted` (monotonic ns).
    private(set) var lastAdjust: UInt64 = 0

    init(wanted: Int) { self.wanted = wanted }

    /// Workers that serve (idle or busy) among `workers`.
    static func ready(_ workers: [Master.WorkerProc], _ states: SlotStateView) -> Int {
        workers.filter {
            let s = states.state($0.slot)
            return s == .idle || s == .busy
        }.count
    }

    /// SIGTTIN (+1) / SIGTTOU (-1): between 1 and `maxWorkers`. False if the size stays.
    mutating func resize(by delta: Int, maxWorkers: Int) -> Bool {
        let new = max(1, min(maxWorkers, wanted + delta))
        guard new != wanted else { return false }
        wanted = new
        return true
    }

    enum SpareStep: Equatable { case grow(idle: Int), shrink(idle: Int) }

    /// Apache-prefork-style spare workers: at most one step per second, never while workers are
    /// still starting or a reload rolls. Grows up to max-workers while fewer than min-spare are
    /// idle; shrinks down to `workers` while more than max-spare are idle.
    mutating func adjustSpare(now: UInt64, settings: ServerConfig, reloading: Bool,
                              current: [Master.WorkerProc], states: SlotStateView) -> SpareStep? {
        guard settings.minSpare > 0 || settings.maxSpare > 0, !reloading, now - lastAdjust >= 1_000_000_000 else { return nil }
        guard current.count == wanted, !current.contains(where: { states.state($0.slot) == .starting }) else { return nil }
        let idle = current.filter { states.state($0.slot) == .idle }.count
        if settings.minSpare > 0 && idle < settings.minSpare && wanted < settings.maxWorkers {
            wanted += 1
            lastAdjust = now
            return .grow(idle: idle)
        } else if settings.maxSpare > 0 && idle > settings.maxSpare && wanted > settings.workers {
            wanted -= 1
            lastAdjust = now
            return .shrink(idle: idle)
        }
        return nil
    }

    /// One balancing step: how many slots to queue for a spawn, which current workers to retire
    /// as surplus (TTOU, max-spare) and which old-generation workers to retire (rolling reload).
    struct Plan: Equatable {
        var spawn = 0
        var retireSurplus: [pid_t] = []
        var retireOld: [pid_t] = []
    }

    /// `current`: workers of the current generation not asked to leave; `old`: those of older
    /// generations not asked to leave; `pending`: slots already queued for a spawn. During a
    /// reload one new worker starts at a time, and an old worker retires only once a new one
    /// serves in its place.
    func balance(current: [Master.WorkerProc], old: [Master.WorkerProc], pending: Int, states: SlotStateView) -> Plan {
        var plan = Plan()
        let starting = current.filter { states.state($0.slot) == .starting }.count
        let have = current.count + pending
        var remaining = current
        if have < wanted {
            plan.spawn = old.isEmpty ? wanted - have : (starting == 0 && pending == 0 ? 1 : 0)
        } else if current.count > wanted {
            let surplus = current.sorted(by: { $0.slot > $1.slot }).prefix(current.count - wanted)
            plan.retireSurplus = surplus.map(\.pid)
            remaining = current.filter { w in !plan.retireSurplus.contains(w.pid) }
        }
        // Rolling reload: retire one old worker per new worker that is serving.
        if !old.isEmpty {
            let surplus = PoolPolicy.ready(remaining, states) + old.count - wanted
            if surplus > 0 {
                plan.retireOld = old.sorted(by: { $0.slot < $1.slot }).prefix(surplus).map(\.pid)
            }
        }
        return plan
    }
}
