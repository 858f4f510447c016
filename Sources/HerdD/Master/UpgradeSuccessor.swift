import HerdLibc
import HerdSys
import Logging

/// The new master's side of a SIGUSR2 hot upgrade (Upgrade.swift has the protocol): it tells
/// the old master its workers serve ("R"), takes over at the commit ("C": systemd's main pid
/// from then on), keeps the predecessor's totals, and when stopped waits for the old master's
/// exit. It owns the uncommitted handover and, after the commit, the socket to the predecessor.
final class UpgradeSuccessor {
    weak var host: UpgradeHost?
    var log: Logger
    let scoreboard: Scoreboard
    /// The master's epoll (set once run() created it).
    var epoll = Epoll.none

    /// Handover not yet committed by the old master (we say nothing to systemd meanwhile).
    private(set) var handover: UpgradeHandover? = nil
    /// After the commit: the old master, until it closes the socket (its final totals come
    /// that way).
    private var predecessor: UpgradeHandover? = nil
    /// Counters handed over by the master we replaced (added to ours in every snapshot).
    private(set) var inherited = CarriedTotals()

    init(handover: UpgradeHandover?, log: Logger, scoreboard: Scoreboard) {
        self.handover = handover
        self.log = log
        self.scoreboard = scoreboard
    }

    /// Started by an upgrade and not yet committed to.
    var awaitingCommit: Bool { handover != nil }

    /// A stopped master that took over by an upgrade waits for the old master to finish its
    /// drain (it closes the handover socket when it exits), so that a stop which waits for the
    /// main pid waits for both generations.
    var waitsForPredecessor: Bool { predecessor != nil }
    var predecessorPID: pid_t? { predecessor?.oldPID }


    /// Our workers serve: tell the old master, and only it ("R"); wait for its commit.
    /// Our workers serve. True if this master waits for a commit (it told the old master).
    func reportReady() -> Bool {
        guard let h = handover else { return false }
        Self.testDelay("HERDD_TEST_SUCCESSOR_READY_DELAY_MS")
        if sendHandoverMessage(h.fd, "R") {
            log.info("upgrade: ready, waiting for master \(h.oldPID) to hand over", metadata: ["event": "upgrade-ready-sent", "old_pid": "\(h.oldPID)"])
            Self.testDelay("HERDD_TEST_SUCCESSOR_COMMIT_DELAY_MS")
        } else {
            log.error("upgrade: cannot reach the old master \(h.oldPID); stopping", metadata: ["event": "upgrade-abandoned"])
            // Gracefully: our workers may have accepted connections from the shared listeners.
            host?.beginStop(immediate: false)
        }
        return true
    }

    /// Test builds only: a successor slow to say it is ready (..._READY_DELAY_MS) or slow to read
    /// the commit (..._COMMIT_DELAY_MS), so that a test's signal surely arrives in that window
    /// (test_upgrade.py). The master's loop blocks meanwhile, as a loaded machine would make it.
    private static func testDelay(_ variable: String) {
        #if HERDD_TEST_HOOKS
        if let ms = Sys.environment(variable).flatMap({ UInt32($0) }) { Sys.sleep(micros: ms * 1000) }
        #endif
    }

    /// A message (or EOF) from the old master on the handover socket.
    func handoverEvent() {
        guard let h = handover ?? predecessor else { return }
        while true {
            switch readHandoverMessage(h.fd) {
            case .empty:
                return
            case .message(let m):
                if m.hasPrefix("C\n") && handover != nil {
                    takeOver(h, totals: CarriedTotals.decode(m.dropFirst(2)))
                } else if m.hasPrefix("F\n") && handover == nil {
                    // The old master's final counters replace what it sent with the commit.
                    inherited = CarriedTotals.decode(m.dropFirst(2))
                }
            case .closed:
                unregisterHandoverSocket(h.fd, from: epoll, log: log)
                Sys.close(h.fd)
                predecessor = nil
                if handover != nil {
                    handover = nil
                    if Sys.canSignal(h.oldPID) {
                        // Alive and not committed: it gave up on us (its SIGTERM follows). Drain what
                        // our workers accepted.
                        log.error("upgrade: the old master \(h.oldPID) closed the handover without committing; stopping", metadata: ["event": "upgrade-abandoned"])
                        host?.beginStop(immediate: false)
                    } else {
                        // It died between its MAINPID= and its "C" (or before): we are all that serves.
                        log.warning("upgrade: the old master \(h.oldPID) exited without confirming the handover; taking over", metadata: ["event": "upgrade-takeover-unconfirmed"])
                        takeOver(h, totals: CarriedTotals())
                    }
                }
                return
            }
        }
    }

    /// Committed: from now on we are systemd's main pid and talk to it; the old master drains.
    private func takeOver(_ h: UpgradeHandover, totals: CarriedTotals) {
        handover = nil
        predecessor = h
        inherited = totals
        SystemdNotify.silenced = false
        do { try scoreboard.publishFile() } catch {
            log.error("cannot publish the scoreboard: \(error)", metadata: ["event": "scoreboard-publish-failed"])
        }
        host?.tookOver()
        log.notice("upgrade: now serving, replaced master \(h.oldPID) (version \(h.oldVersion)) with version \(herddVersionString)", metadata: [
            "event": "upgrade-takeover", "old_pid": "\(h.oldPID)", "old_version": "\(h.oldVersion)", "new_version": "\(herddVersionString)",
        ])
        dropUSR2MeantForPredecessor(when: "before the takeover")
    }

    /// `systemctl kill -s USR2` without `--kill-who=main` signals every process of the unit, and
    /// systemd's pass over the cgroup can reach us while we start. Such a USR2 was meant for the
    /// old master. USR2 is blocked from our spawn on (Spawn.masterOnlySignals), so it waits in
    /// the pending set: dropped here at the loop's start, refused when the loop reads it before
    /// the commit (`awaitingCommit`), and dropped here again right after the takeover line (a
    /// USR2 sent after that line is a new upgrade, of us). Without the second drop, a USR2 still
    /// pending when the "C" arrived was read after it and started a second upgrade.
    func dropUSR2MeantForPredecessor(when: String) {
        do {
            if try Sys.discardPendingSignal(SIGUSR2) > 0 {
                log.info("upgrade: dropped a SIGUSR2 that arrived \(when) (meant for the old master)", metadata: ["event": "upgrade-usr2-dropped"])
            }
        } catch {
            log.warning("upgrade: \(error)", metadata: ["event": "upgrade-usr2-dropped"])
        }
    }
}
