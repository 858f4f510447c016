import Glibc

/// IMF-fixdate formatting (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
package enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The IMF-fixdate of a time in seconds since the epoch (UTC).
    package static func format(epochSeconds: Int) -> String {
        var t = time_t(epochSeconds)
        var tm = Glibc.tm()
        guard gmtime_r(&t, &tm) != nil else { return "Thu, 01 Jan 1970 00:00:00 GMT" }
        let wday = Int(tm.tm_wday), mon = Int(tm.tm_mon)
        let dayName = days.indices.contains(wday) ? days[wday] : "Sun"
        let monName = months.indices.contains(mon) ? months[mon] : "Jan"
        return "\(dayName), \(pad(Int(tm.tm_mday), 2)) \(monName) \(pad(Int(tm.tm_year) + 1900, 4)) "
            + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)) GMT"
    }

    /// The current time, formatted.
    package static func now() -> String {
        format(epochSeconds: Int(time(nil)))
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
