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

    /// RFC 9110 `tchar` (token characters: header names, methods) as two 64-bit masks, one
    /// per half of ASCII: a literal constant, so the hot path pays neither a table lookup
    /// through a lazily initialised global nor a bounds check.
    /// Low half: "!#$%&'*+-." and digits. High half: letters and "^_`|~".
    static let tcharMaskLow: UInt64 = 0x03FF_6CFA_0000_0000
    static let tcharMaskHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    @inline(__always) static func isTchar(_ c: UInt8) -> Bool {
        if c < 64 { return (tcharMaskLow >> UInt64(c)) & 1 == 1 }
        if c < 128 { return (tcharMaskHigh >> UInt64(c - 64)) & 1 == 1 }
        return false
    }

    /// RFC 3986 characters allowed in a request-target (unreserved, gen-delims, sub-delims and
    /// '%'), without '#' (a fragment is never sent): no controls, space, `"<>\\^`{|}`, DEL or
    /// bytes >= 0x80.
    static let targetMaskLow: UInt64 = 0xAFFF_FFF2_0000_0000
    static let targetMaskHigh: UInt64 = 0x47FF_FFFE_AFFF_FFFF
    /// RFC 3986 reg-name (and IPv4address) characters: unreserved, sub-delims, '%'.
    static let regNameMaskLow: UInt64 = 0x2BFF_7FF2_0000_0000
    static let regNameMaskHigh: UInt64 = 0x47FF_FFFE_87FF_FFFE
    /// Inside an IP-literal's brackets: unreserved, sub-delims, ':' (IPv6address, IPvFuture),
    /// '%' (a zone id, RFC 6874: `[fe80::1%25eth0]`).
    static let ipLiteralMaskLow: UInt64 = 0x2FFF_7FF2_0000_0000
    static let ipLiteralMaskHigh: UInt64 = 0x47FF_FFFE_87FF_FFFE

    /// Is `c` in the ASCII set given by two 64-bit masks (bytes >= 0x80 never are)?
    @inline(__always) static func inSet(_ c: UInt8, _ low: UInt64, _ high: UInt64) -> Bool {
        // &>>: a plain shift (the amount is < 64 here), without the overshift checks of >>.
        if c < 64 { return (low &>> UInt64(c)) & 1 == 1 }
        if c < 128 { return (high &>> UInt64(c &- 64)) & 1 == 1 }
        return false
    }

    @inline(__always) static func isTargetChar(_ c: UInt8) -> Bool { inSet(c, targetMaskLow, targetMaskHigh) }

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

    /// Field-value bytes that would corrupt a message head: controls other than HTAB, and DEL.
    @inline(__always) static func isUnsafeInValue(_ c: UInt8) -> Bool {
        (c < 0x20 && c != ht) || c == 0x7F
    }

    /// Case-insensitive (ASCII) comparison of bytes with a lowercase literal (no allocation).
    @inline(__always)
    static func equalsLowercase(_ p: UnsafeRawBufferPointer, _ lowercase: StaticString) -> Bool {
        let n = lowercase.utf8CodeUnitCount
        guard p.count == n else { return false }
        let q = lowercase.utf8Start
        for i in 0..<n where lower(p[i]) != q[i] { return false }
        return true
    }

    /// Case-insensitive (ASCII) comparison of a string with a lowercase literal.
    @inline(__always)
    static func equalsLowercase(_ s: String, _ lowercase: StaticString) -> Bool {
        withBytes(s) { equalsLowercase($0, lowercase) }
    }

    /// Calls `body` with the UTF-8 bytes of `s`: in place for native strings (every string we
    /// build), through a temporary copy otherwise (bridged or foreign strings).
    @inline(__always)
    static func withBytes<R>(_ s: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let r = s.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return r }
        return Array(s.utf8).withUnsafeBytes(body)
    }

    /// Case-insensitive (ASCII only) comparison of two strings.
    static func caseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
        guard a.utf8.count == b.utf8.count else { return false }
        return withBytes(a) { pa in
            withBytes(b) { pb in
                for i in 0..<pa.count where lower(pa[i]) != lower(pb[i]) { return false }
                return true
            }
        }
    }

    /// Is `s` a non-empty token (RFC 9110 5.6.2)?
    static func isToken(_ s: String) -> Bool {
        withBytes(s) { p in
            guard !p.isEmpty else { return false }
            for c in p where !isTchar(c) { return false }
            return true
        }
    }

    /// Does `s` contain no byte that would corrupt a message head?
    static func isSafeValue(_ s: String) -> Bool {
        withBytes(s) { p in
            for c in p where isUnsafeInValue(c) { return false }
            return true
        }
    }

    @inline(__always) static func isOWS(_ c: UInt8) -> Bool { c == sp || c == ht }

    /// Calls `body` with each OWS-trimmed element of a comma-separated list, until it returns
    /// false. Empty elements are skipped (RFC 9110 5.6.1) unless `keepingEmpty` (Content-Length,
    /// where an empty element is an error). Returns false if `body` stopped early.
    @discardableResult @inline(__always)
    static func forEachListElement(_ p: UnsafeRawBufferPointer, keepingEmpty: Bool = false,
                                   _ body: (UnsafeRawBufferPointer) -> Bool) -> Bool {
        var i = 0
        let n = p.count
        while i <= n {
            var e = i
            while e < n && p[e] != comma { e += 1 }
            var s = i, t = e
            while s < t && isOWS(p[s]) { s += 1 }
            while t > s && isOWS(p[t - 1]) { t -= 1 }
            if t > s || keepingEmpty, !body(UnsafeRawBufferPointer(rebasing: p[s..<t])) { return false }
            i = e + 1
        }
        return true
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

extension Array where Element == UInt8 {
    /// Appends raw bytes with one copy. (`append(contentsOf:)` with an UnsafeRawBufferPointer
    /// goes byte by byte: it has no contiguous-storage fast path; a typed buffer does.)
    @inline(__always)
    mutating func appendBytes(_ p: UnsafeRawBufferPointer) {
        append(contentsOf: p.assumingMemoryBound(to: UInt8.self))
    }
}
