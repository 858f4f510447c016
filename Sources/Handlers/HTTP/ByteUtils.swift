// Small byte-level helpers shared by the parser, headers and handlers. No Foundation.

enum ASCII {
    static let cr: UInt8 = 13
    static let lf: UInt8 = 10
    static let sp: UInt8 = 32
    static let ht: UInt8 = 9
    static let colon: UInt8 = 58
    static let semicolon: UInt8 = 59
    static let comma: UInt8 = 44
    static let percent: UInt8 = 37
    static let slash: UInt8 = 47
    static let question: UInt8 = 63

    /// RFC 9110 `tchar`: token characters (header names, methods).
    static let tcharTable: [Bool] = {
        var t = [Bool](repeating: false, count: 256)
        for c in UInt8(ascii: "0")...UInt8(ascii: "9") { t[Int(c)] = true }
        for c in UInt8(ascii: "a")...UInt8(ascii: "z") { t[Int(c)] = true }
        for c in UInt8(ascii: "A")...UInt8(ascii: "Z") { t[Int(c)] = true }
        for c in "!#$%&'*+-.^_`|~".utf8 { t[Int(c)] = true }
        return t
    }()

    @inline(__always) static func isTchar(_ c: UInt8) -> Bool { tcharTable[Int(c)] }

    @inline(__always) static func lower(_ c: UInt8) -> UInt8 {
        (c >= 65 && c <= 90) ? c | 0x20 : c
    }

    /// Value of a hex digit, or nil.
    @inline(__always) static func hexValue(_ c: UInt8) -> Int? {
        switch c {
        case 48...57: return Int(c - 48)
        case 65...70: return Int(c - 55)
        case 97...102: return Int(c - 87)
        default: return nil
        }
    }

    /// Case-insensitive (ASCII only) comparison of two strings.
    static func caseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
        let ua = a.utf8, ub = b.utf8
        guard ua.count == ub.count else { return false }
        for (x, y) in zip(ua, ub) where lower(x) != lower(y) { return false }
        return true
    }

    /// Is `s` a non-empty token (RFC 9110 5.6.2)?
    static func isToken(_ s: String) -> Bool {
        var any = false
        for c in s.utf8 {
            guard isTchar(c) else { return false }
            any = true
        }
        return any
    }

    /// Trims spaces and horizontal tabs (OWS) at both ends.
    static func trimOWS(_ s: Substring) -> Substring {
        var u = s.utf8[...]
        while let f = u.first, f == sp || f == ht { u = u.dropFirst() }
        while let l = u.last, l == sp || l == ht { u = u.dropLast() }
        return Substring(u)
    }

    /// Splits a comma-separated header value into trimmed, non-empty elements.
    static func commaList(_ s: String) -> [Substring] {
        s.split(separator: ",", omittingEmptySubsequences: false)
            .map { trimOWS($0) }
            .filter { !$0.isEmpty }
    }
}

/// Percent-decodes a byte sequence. Returns nil if a `%` is not followed by two hex digits.
func percentDecode<C: Collection>(_ bytes: C) -> [UInt8]? where C.Element == UInt8 {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    var i = bytes.startIndex
    while i != bytes.endIndex {
        let c = bytes[i]
        if c == ASCII.percent {
            let h = bytes.index(after: i)
            guard h != bytes.endIndex else { return nil }
            let l = bytes.index(after: h)
            guard l != bytes.endIndex,
                  let hv = ASCII.hexValue(bytes[h]), let lv = ASCII.hexValue(bytes[l]) else { return nil }
            out.append(UInt8(hv << 4 | lv))
            i = bytes.index(after: l)
        } else {
            out.append(c)
            i = bytes.index(after: i)
        }
    }
    return out
}

/// Decodes bytes as UTF-8, returning nil for invalid UTF-8 (no replacement characters).
func strictUTF8<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
    String(validating: bytes, as: UTF8.self)
}
