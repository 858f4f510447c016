import HerdLibc

/// The pure parts of static file serving (RFC 9110 sections 8.8, 13 and 14): entity tags,
/// HTTP dates, byte ranges and Accept-Encoding. No I/O, unit-tested on their own.
package enum StaticConditions {
    /// A strong entity tag like nginx's (`"<mtime hex>-<size hex>"`) with the inode appended, as
    /// Apache does: a file replaced by another with the same size and second (a `mv` of a new
    /// build over the old one) still gets a new tag.
    package static func etag(size: Int, mtime: Int, inode: UInt64) -> String {
        "\"\(String(mtime, radix: 16))-\(String(size, radix: 16))-\(String(inode, radix: 16))\""
    }

    /// One member of an If-None-Match / If-Match list.
    package enum TagMatch: Equatable, Sendable {
        case any
        case tag(opaque: String, weak: Bool)
    }

    /// Parses `*` or a comma-separated list of entity tags (`"a", W/"b"`). Commas inside quotes
    /// belong to the tag. nil when the value is malformed (the field is then ignored).
    package static func parseTagList(_ value: String) -> [TagMatch]? {
        let b = Array(value.utf8)
        var i = 0
        var out: [TagMatch] = []
        func skipSpaceAndCommas() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 || b[i] == 0x2C { i += 1 } }
        skipSpaceAndCommas()
        if i < b.count, b[i] == UInt8(ascii: "*") {
            i += 1
            skipSpaceAndCommas()
            return i == b.count ? [.any] : nil
        }
        while i < b.count {
            var weak = false
            if i + 1 < b.count, b[i] == UInt8(ascii: "W"), b[i + 1] == UInt8(ascii: "/") { weak = true; i += 2 }
            guard i < b.count, b[i] == 0x22 else { return nil }
            let start = i
            i += 1
            while i < b.count, b[i] != 0x22 { i += 1 }
            guard i < b.count else { return nil }
            i += 1
            out.append(.tag(opaque: String(decoding: b[start..<i], as: UTF8.self), weak: weak))
            let before = i
            skipSpaceAndCommas()
            if i < b.count, i == before { return nil }  // garbage glued to a tag
        }
        return out.isEmpty ? nil : out
    }

    /// If-None-Match: weak comparison (a weak tag matches its strong twin); `*` matches any
    /// current representation.
    package static func noneMatchHits(_ list: [TagMatch], etag: String) -> Bool {
        list.contains { m in
            switch m {
            case .any: return true
            case .tag(let opaque, _): return opaque == etag
            }
        }
    }

    /// If-Match (and If-Range): strong comparison, weak tags never match.
    package static func strongMatch(_ list: [TagMatch], etag: String) -> Bool {
        list.contains { m in
            switch m {
            case .any: return true
            case .tag(let opaque, let weak): return !weak && opaque == etag
            }
        }
    }

    /// Seconds since the epoch from an HTTP-date: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
    /// and the obsolete RFC 850 and asctime forms recipients must accept (RFC 9110 5.6.7).
    package static func parseHTTPDate(_ text: String) -> Int? {
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let words = text.split(separator: " ", omittingEmptySubsequences: true)
        var day: Substring, month: Substring, year: Substring, clock: Substring
        switch words.count {
        case 6 where words[5] == "GMT" && words[0].hasSuffix(","):  // IMF-fixdate
            (day, month, year, clock) = (words[1], words[2], words[3], words[4])
        case 4 where words[3] == "GMT" && words[0].hasSuffix(","):  // RFC 850: 06-Nov-94
            let dmy = words[1].split(separator: "-", omittingEmptySubsequences: false)
            guard dmy.count == 3, dmy[2].count == 2 else { return nil }
            (day, month, year, clock) = (dmy[0], dmy[1], dmy[2], words[2])
        case 5:  // asctime: Sun Nov  6 08:49:37 1994
            (day, month, year, clock) = (words[2], words[1], words[4], words[3])
        default:
            return nil
        }
        func num(_ s: Substring, _ digits: ClosedRange<Int>) -> Int? {
            guard digits.contains(s.count), s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(s)
        }
        let hms = clock.split(separator: ":", omittingEmptySubsequences: false)
        guard let d = num(day, 1...2), (1...31).contains(d),
              let m = months.firstIndex(of: month.lowercased()),
              var y = num(year, 2...4), year.count != 3,
              hms.count == 3, let hh = num(hms[0], 2...2), let mm = num(hms[1], 2...2), let ss = num(hms[2], 2...2),
              hh < 24, mm < 60, ss <= 60 else { return nil }
        if year.count == 2 { y += y < 70 ? 2000 : 1900 }
        var t = tm()
        t.tm_year = Int32(y - 1900)
        t.tm_mon = Int32(m)
        t.tm_mday = Int32(d)
        t.tm_hour = Int32(hh)
        t.tm_min = Int32(mm)
        t.tm_sec = Int32(ss)
        return Int(timegm(&t))
    }

    /// What a `Range` field asks of a representation of `length` bytes.
    package enum RangeRequest: Equatable, Sendable {
        /// Serve the whole representation (no Range, not `bytes`, malformed, or several ranges).
        case full
        /// One satisfiable range, inclusive bounds, clamped to the length.
        case range(first: Int, last: Int)
        /// The range starts at or after the end: 416 with `Content-Range: bytes */length`.
        case unsatisfiable
    }

    /// Parses a single byte range (`bytes=0-99`, `bytes=100-`, `bytes=-100`), RFC 9110 14.1.
    /// Several ranges are served as the whole representation (allowed: a server may ignore Range),
    /// as is anything malformed.
    package static func parseRange(_ value: String, length: Int) -> RangeRequest {
        var v = Substring(value).drop(while: { $0 == " " })
        guard v.count > 6, v.prefix(6).lowercased() == "bytes=" else { return .full }
        v = v.dropFirst(6)
        let spec = v.trimmingSpacesAndTabs()
        guard !spec.contains(","), let dash = spec.firstIndex(of: "-") else { return .full }
        let a = spec[..<dash].trimmingSpacesAndTabs(), b = spec[spec.index(after: dash)...].trimmingSpacesAndTabs()
        func number(_ s: Substring) -> Int? {
            guard !s.isEmpty, s.count <= 18, s.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(s)
        }
        if a.isEmpty {
            guard let suffix = number(b) else { return .full }
            guard suffix > 0, length > 0 else { return .unsatisfiable }
            return .range(first: max(0, length - suffix), last: length - 1)
        }
        guard let first = number(a) else { return .full }
        var last = length - 1
        if !b.isEmpty {
            guard let l = number(b), l >= first else { return .full }
            last = min(l, length - 1)
        }
        return first < length ? .range(first: first, last: last) : .unsatisfiable
    }

    /// Does an Accept-Encoding value accept `coding` (`gzip`, `br`)? Yes when it is listed with
    /// q > 0, or not listed while `*` is (RFC 9110 12.5.3). `x-gzip` counts as gzip.
    package static func accepts(_ acceptEncoding: String, _ coding: String) -> Bool {
        var listed: Bool?
        var star: Bool?
        for element in acceptEncoding.split(separator: ",") {
            let parts = element.split(separator: ";")
            guard let rawName = parts.first else { continue }
            var name = rawName.trimmingSpacesAndTabs().lowercased()
            if name == "x-gzip" { name = "gzip" }
            var q = 1.0
            for p in parts.dropFirst() {
                let kv = p.trimmingSpacesAndTabs()
                if kv.lowercased().hasPrefix("q=") { q = Double(kv.dropFirst(2)) ?? 0 }
            }
            if name == coding { listed = q > 0 } else if name == "*" { star = q > 0 }
        }
        return listed ?? star ?? false
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's OWS).
    package func trimmingSpacesAndTabs() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
