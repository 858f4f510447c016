/// IMF-fixdate formatting (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
package enum HTTPDate {
    private static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// The IMF-fixdate of a time in seconds since the epoch (UTC). Pure arithmetic (the proleptic
    /// Gregorian calendar, H. Hinnant's civil_from_days), so HTTP needs no libc time function.
    package static func format(epochSeconds: Int) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secs = epochSeconds - days * 86_400
        let wday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (4)
        let z = days + 719_468  // days since 0000-03-01
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let mday = doy - (153 * mp + 2) / 5 + 1
        let mon = mp < 10 ? mp + 2 : mp - 10  // 0 = January
        let year = yoe + era * 400 + (mon <= 1 ? 1 : 0)
        return "\(dayNames[wday]), \(pad(mday, 2)) \(monthNames[mon]) \(pad(year, 4)) "
            + "\(pad(secs / 3_600, 2)):\(pad(secs / 60 % 60, 2)):\(pad(secs % 60, 2)) GMT"
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}
