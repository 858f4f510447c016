import HerdSys

/// sd_notify(3) messages to the service manager. Without NOTIFY_SOCKET every call is a no-op
/// (sd_notify returns 0), so herdd runs the same way by hand and under systemd.
enum SystemdNotify {
    /// Set by an old master once a hot upgrade handed the service over: with NotifyAccess=all
    /// its STATUS= lines would overwrite the new main process's.
    nonisolated(unsafe) static var silenced = false

    /// Sends one or more newline-separated assignments ("READY=1\nSTATUS=...").
    /// unset_environment=0: the master keeps NOTIFY_SOCKET for later messages; workers are
    /// spawned with it removed (they never talk to systemd themselves).
    @discardableResult
    static func send(_ state: String) -> Bool {
        if silenced { return false }
        return (try? Sys.notify(state)) ?? false
    }

    static func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    static func status(_ s: String) { sendDroppable("STATUS=\(s)") }
    static func stopping(status: String) { send("STOPPING=1\nSTATUS=\(status)") }
    static func watchdog() { sendDroppable("WATCHDOG=1") }

    /// Frequent messages go out without blocking: a full notify queue drops them (the next one
    /// follows within a second) instead of freezing the master's loop.
    @discardableResult
    static func sendDroppable(_ state: String) -> Bool {
        if silenced { return false }
        return Sys.notifyNonBlocking(state) > 0
    }

    /// RELOADING=1 must carry MONOTONIC_USEC (systemd >= 253 uses it to match the reload).
    static func reloading() {
        send("RELOADING=1\nMONOTONIC_USEC=\(monotonicNanos() / 1000)\nSTATUS=reloading")
    }

    /// Watchdog interval in microseconds when systemd asked for keep-alive pings, else nil.
    static func watchdogInterval() -> UInt64? {
        (try? Sys.watchdogInterval()) ?? nil
    }

    /// FDSTORE=1 with FDNAME= per listener (one message each: a name applies to every fd of its
    /// message). Without NOTIFY_SOCKET this does nothing.
    static func storeListeners(_ listeners: [Listener]) {
        guard hasNotifySocket else { return }
        for l in listeners {
            try? Sys.notify("FDSTORE=1\nFDNAME=\(l.name)", storing: l.fd)
        }
    }

    static var hasNotifySocket: Bool { Sys.environment("NOTIFY_SOCKET") != nil }
}
