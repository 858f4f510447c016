import Logging
import HerdSys

/// The accept-queue alarm of one listener: at or above the threshold for `holdNanos` raises
/// it, one sample below clears it. A plain value driven by the sampling clock.
struct BacklogAlarm: Sendable {
    static let holdNanos: UInt64 = 3_000_000_000

    enum Change: Equatable { case raised, cleared }

    private(set) var aboveSince: UInt64? = nil
    private(set) var alarmed = false

    mutating func update(above: Bool, now: UInt64) -> Change? {
        if above {
            let since = aboveSince ?? now
            aboveSince = since
            if !alarmed && now - since >= BacklogAlarm.holdNanos {
                alarmed = true
                return .raised
            }
            return nil
        }
        aboveSince = nil
        if alarmed {
            alarmed = false
            return .cleared
        }
        return nil
    }
}

/// Samples the worker listeners' accept queues (every master tick): length and limit from
/// TCP_INFO for TCP (tcpi_unacked / tcpi_sacked on a listening socket), from sock_diag
/// UNIX_DIAG_RQLEN for unix stream sockets. Keeps each listener's BacklogWindow (peak over the
/// last minute, time above the threshold) and its BacklogAlarm.
final class BacklogMonitor {
    private let listeners: [Listener]
    private(set) var windows: [BacklogWindow]
    private var alarms: [BacklogAlarm]
    /// NETLINK_SOCK_DIAG socket for unix listeners' queues (opened on first use).
    private var sockDiagFD: Int32 = -1
    /// The listeners herdd bound itself that a stop has closed (their fd numbers may belong to
    /// something else by now).
    var closedFDs: Set<Int32> = []

    init(listeners: [Listener]) {
        self.listeners = listeners
        self.windows = Array(repeating: BacklogWindow(), count: listeners.count)
        self.alarms = Array(repeating: BacklogAlarm(), count: listeners.count)
    }

    /// Length and limit of listener `i`'s accept queue, nil if it cannot be read.
    func acceptQueue(_ i: Int) -> (UInt32, UInt32)? {
        if closedFDs.contains(listeners[i].fd) { return nil }
        switch listeners[i].family {
        case .tcp:
            return Sys.tcpAcceptQueue(listeners[i].fd)
        case .unix:
            if sockDiagFD < 0 {
                // Unavailable (no netlink in a sandbox, out of fds): no sample; tried next tick.
                guard let fd = try? Sys.sockDiagSocket() else { return nil }
                sockDiagFD = fd
            }
            return Sys.unixAcceptQueue(diag: sockDiagFD, listeners[i].fd)
        }
    }

    /// Samples every listener's queue. Keeps the peak for /metrics and warns when the queue
    /// stays above --backlog-alarm (`alarmThreshold`; 0: half the limit) for 3 seconds.
    func sample(now: UInt64, alarmThreshold: Int, log: Logger) {
        for (i, l) in listeners.enumerated() {
            guard let (q, lim) = acceptQueue(i) else { continue }
            let threshold = alarmThreshold > 0 ? UInt32(clamping: alarmThreshold) : max(1, lim / 2)
            windows[i].record(q, above: q >= threshold, now: now)
            switch alarms[i].update(above: q >= threshold, now: now) {
            case .raised:
                log.warning("accept queue of \(l.name) has stayed at or above \(threshold) for 3 s: \(q) waiting, limit \(lim); workers cannot keep up", metadata: [
                    "event": "backlog-alarm", "listener": "\(l.name)", "backlog": "\(q)", "backlog_limit": "\(lim)", "threshold": "\(threshold)",
                ])
            case .cleared:
                log.notice("accept queue of \(l.name) back below \(threshold): \(q) waiting", metadata: [
                    "event": "backlog-alarm-cleared", "listener": "\(l.name)", "backlog": "\(q)",
                ])
            case nil:
                break
            }
        }
    }
}
