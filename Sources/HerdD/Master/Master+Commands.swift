import HerdLibc
import HerdSys
import Logging

/// What an operator asks of a running master: TTIN/TTOU (resize the pool) and HUP (reload the
/// configuration, rolled back if the new generation does not come up).
extension Master {

    func resize(by delta: Int) {
        guard pool.resize(by: delta, maxWorkers: config.maxWorkers) else {
            log.info("pool size stays \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)"])
            return
        }
        log.info("pool size \(delta > 0 ? "increased" : "decreased") to \(wanted)", metadata: ["event": "resize", "workers": "\(wanted)"])
    }

    /// SIGHUP: RELOADING=1, re-read the configuration, roll the workers, READY=1. A config that
    /// does not parse keeps the old one: nothing stops serving.
    func beginReload() {
        SystemdNotify.reloading()
        log.info("reloading configuration", metadata: ["event": "reload", "config": "\(configPath ?? "-")"])
        do {
            let new = try loadConfig(path: configPath, overrides: overrides)
            try validateHandlers(new, listeners: allListeners)
            if new.listen != config.listen && !new.listen.isEmpty {
                log.warning("listen addresses changed in the configuration; a reload keeps the current sockets (restart or upgrade to change them)", metadata: ["event": "reload-listen-unchanged"])
            }
            if new.deferAccept != config.deferAccept { try applyDeferAccept(new.deferAccept, reason: "reload") }
            reload.begin(serving: .init(config: config, wanted: wanted, generation: generation))
            config = new
            wanted = new.workers
            generation += 1
            respawn.reset()
        } catch {
            log.error("reload failed, keeping the running configuration: \(error)", metadata: ["event": "reload-failed"])
            SystemdNotify.ready(status: "reload failed: \(error)")
            scoreboard.publish(reload: .failed, message: "reload failed, running configuration kept: \(error)")
        }
    }

    /// The new generation keeps dying at start: retire it, go back to the previous configuration
    /// and generation (whose workers are still serving, or are respawned), and report failure.
    func abortReload(_ rb: ReloadPolicy.Rollback, why: String) {
        let failed = generation
        if rb.config.deferAccept != config.deferAccept { restoreDeferAccept(rb.config.deferAccept, reason: "reload-rollback") }
        config = rb.config
        wanted = rb.wanted
        generation = rb.generation
        reload.end()
        respawn.reset()
        pendingSpawns.removeAll()
        for w in workers.values where w.generation == failed { retire(w.pid, reason: "reload-failed") }
        log.error("reload failed: \(why); back to generation \(generation)", metadata: ["event": "reload-failed", "generation": "\(generation)"])
        SystemdNotify.ready(status: "reload failed: \(why)")
        scoreboard.publish(reload: .failed, message: "reload failed: \(why); previous configuration restored")
    }

    /// TCP_DEFER_ACCEPT of the running listeners set to `on`, where the value that holds for them
    /// can change after start: a reload that changes it, that reload's rollback, and a failed
    /// upgrade (the new master set its own configuration's value on the shared sockets).
    func applyDeferAccept(_ on: Bool, reason: String) throws {
        try Master.setDeferAccept(allListeners, on: on)
        log.info("defer-accept \(on ? "on" : "off") on the TCP listeners (\(reason))", metadata: ["event": "defer-accept", "reason": "\(reason)"])
    }

    /// applyDeferAccept where nothing is left to refuse (a rollback, a failed upgrade): a failure
    /// is logged, and the listeners keep serving with the value they have.
    func restoreDeferAccept(_ on: Bool, reason: String) {
        do { try applyDeferAccept(on, reason: reason) } catch {
            log.error("defer-accept not restored (\(reason)): \(error)", metadata: ["event": "defer-accept-failed", "reason": "\(reason)"])
        }
    }
}
