/// The counters a master hands to its successor in a hot upgrade, so that every counter a
/// scraper sees (requests, bytes, accepts, restarts, upgrades, per-listener herd meter and
/// latency histogram, backlog alarm time) stays monotonic across SIGUSR2: the new master adds
/// them to its own.
///
/// Sent twice on the handover socket: with the commit ("C"), and once more when the old master
/// exits after draining ("F"; its workers kept counting while they finished their requests).
/// The second set replaces the first, and is never smaller.
///
/// Text, one counter per line, so a version mismatch between old and new binary degrades to
/// "unknown lines ignored" instead of a misread layout:
///
///     requests <1xx> <2xx> <3xx> <4xx> <5xx>
///     bytes <n>
///     accepted <n>
///     upgrades <n>
///     restart <n> <reason>
///     dispatch <wakeups> <empty wakeups>
///     async <started> <deadline> <client gone> <drain>   (MetricsSnapshot.Counters.async)
///     listener <c0> ... <cN> <name>       (Scoreboard.listenerCounters order)
///     backlog-alarm-ms <n> <name>
///     closed <n> <reason>                 (CloseReason.label; unknown reasons are dropped)
///     listener-shed <queue-time> <request-start> <wait µs> <name>   (the shed words, after
///                                         the `listener` line's; older masters send none)
///     listener-shed-arrival <n> <name>    (requests shed at arrival; older masters send none)
///
/// The old master runs the old binary and the new master the new one, so this text is the
/// interface between two versions: keep every line as it is (old masters send it, new ones
/// must read it; CarriedTotalsTests.wireFormat pins it). Add counters as new lines only.
///
/// The server-wide counters are the snapshot's own (`MetricsSnapshot.Counters`), read and
/// written as members (`t.bytesOut` is `t.counters.bytesOut`).
@dynamicMemberLookup
struct CarriedTotals: Equatable, Sendable {
    var counters = MetricsSnapshot.Counters()
    /// Per listener name, counters in Scoreboard.listenerCounters order.
    var listeners: [String: [UInt64]] = [:]
    /// Per listener name, milliseconds the accept queue spent at or above the alarm threshold.
    var backlogAlarmMillis: [String: UInt64] = [:]

    /// Milliseconds back from the seconds a snapshot shows (whole milliseconds divided by 1000):
    /// rounded, as truncating dropped one (1001 ms is 1.001 s, and 1.001 * 1000 is 1000.99...),
    /// and the new master then showed less than the old one had (issue 24).
    static func millis(seconds: Double) -> UInt64 {
        UInt64(max(0, (seconds * 1000).rounded()))
    }

    subscript<T>(dynamicMember path: WritableKeyPath<MetricsSnapshot.Counters, T>) -> T {
        get { counters[keyPath: path] }
        set { counters[keyPath: path] = newValue }
    }

    func encoded() -> String {
        let s = counters
        var out = "requests " + s.requestsByClass.map(String.init).joined(separator: " ") + "\n"
        out += "bytes \(s.bytesOut)\naccepted \(s.accepted)\nupgrades \(s.upgrades)\n"
        out += "dispatch \(s.dispatchWakeups) \(s.dispatchEmptyWakeups)\n"
        out += "async " + s.async.map(String.init).joined(separator: " ") + "\n"
        for (reason, n) in s.restarts.sorted(by: { $0.key < $1.key }) { out += "restart \(n) \(reason)\n" }
        let legacy = Scoreboard.carriedListenerCounterCount
        for (name, c) in listeners.sorted(by: { $0.key < $1.key }) {
            out += "listener " + c.prefix(legacy).map(String.init).joined(separator: " ") + " \(name)\n"
        }
        let shed = legacy..<Scoreboard.shedArrivalCounterIndex
        for (name, c) in listeners.sorted(by: { $0.key < $1.key }) where c.count > shed.upperBound && c[shed].contains(where: { $0 != 0 }) {
            out += "listener-shed " + c[shed].map(String.init).joined(separator: " ") + " \(name)\n"
        }
        for (name, c) in listeners.sorted(by: { $0.key < $1.key }) where c.count > shed.upperBound && c[shed.upperBound] != 0 {
            out += "listener-shed-arrival \(c[shed.upperBound]) \(name)\n"
        }
        for (name, ms) in backlogAlarmMillis.sorted(by: { $0.key < $1.key }) { out += "backlog-alarm-ms \(ms) \(name)\n" }
        for r in CloseReason.allCases where s.connectionsClosed[r.rawValue] > 0 { out += "closed \(s.connectionsClosed[r.rawValue]) \(r.label)\n" }
        return out
    }

    /// Parses `encoded()` output; unknown or malformed lines are skipped.
    static func decode<S: StringProtocol>(_ text: S) -> CarriedTotals {
        var t = CarriedTotals()
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ", omittingEmptySubsequences: false)
            guard let key = words.first else { continue }
            switch key {
            case "requests":
                let v = words.dropFirst().compactMap { UInt64($0) }
                if v.count == 5 { t.requestsByClass = v }
            case "bytes": if words.count == 2, let v = UInt64(words[1]) { t.bytesOut = v }
            case "accepted": if words.count == 2, let v = UInt64(words[1]) { t.accepted = v }
            case "dispatch":
                if words.count == 3, let w = UInt64(words[1]), let e = UInt64(words[2]) {
                    t.dispatchWakeups = w
                    t.dispatchEmptyWakeups = e
                }
            case "async":
                let v = words.dropFirst().compactMap { UInt64($0) }
                if v.count == t.async.count { t.async = v }
            case "upgrades": if words.count == 2, let v = UInt64(words[1]) { t.upgrades = v }
            case "restart":
                if words.count >= 3, let v = UInt64(words[1]) { t.restarts[words[2...].joined(separator: " ")] = v }
            case "listener":
                let n = Scoreboard.carriedListenerCounterCount
                guard words.count >= n + 2 else { continue }
                let v = words[1...n].compactMap { UInt64($0) }
                let name = words[(n + 1)...].joined(separator: " ")
                // The shed words may have come first (listener-shed): keep them.
                let tail = t.listeners[name].map { Array($0.dropFirst(n)) }
                    ?? [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount - n)
                if v.count == n { t.listeners[name] = v + tail }
            case "listener-shed", "listener-shed-arrival":
                // Where this line's words go in `listenerCounters` order.
                let at = key == "listener-shed"
                    ? Scoreboard.carriedListenerCounterCount..<Scoreboard.shedArrivalCounterIndex
                    : Scoreboard.shedArrivalCounterIndex..<(Scoreboard.shedArrivalCounterIndex + 1)
                let n = at.count
                guard words.count >= n + 2 else { continue }
                let v = words[1...n].compactMap { UInt64($0) }
                let name = words[(n + 1)...].joined(separator: " ")
                guard v.count == n else { continue }
                var c = t.listeners[name] ?? [UInt64](repeating: 0, count: Scoreboard.listenerCounterCount)
                c.replaceSubrange(at, with: v)
                t.listeners[name] = c
            case "closed":
                if words.count == 3, let v = UInt64(words[1]), let r = CloseReason(label: String(words[2])) {
                    t.connectionsClosed[r.rawValue] = v
                }
            case "backlog-alarm-ms":
                if words.count >= 3, let v = UInt64(words[1]) { t.backlogAlarmMillis[words[2...].joined(separator: " ")] = v }
            default: continue
            }
        }
        return t
    }
}
