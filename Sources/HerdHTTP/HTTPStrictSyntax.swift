// Byte-level syntax checks where request smuggling lives (Host, absolute-form authority,
// Transfer-Encoding lists, chunk extensions): table-driven like the rest of ByteUtils, no
// allocation. Used by HTTPRequestParser.

enum StrictSyntax {
    /// `uri-host [ ":" port ]` (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3): an IP-literal in brackets,
    /// or a reg-name / IPv4address of unreserved, sub-delims and pct-encoded bytes; the port is
    /// digits. No userinfo, no '/', no whitespace. Empty is valid syntax (the caller decides).
    static func isValidHostPort(_ p: UnsafeRawBufferPointer) -> Bool {
        guard let b = p.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return true }
        let n = p.count
        // Fast path for nearly every Host: name bytes without '%', then nothing or ":digits".
        var i = 0
        while i < n && ASCII.inSet(b[i], plainNameMaskLow, plainNameMaskHigh) { i &+= 1 }
        if i == n { return true }
        if i > 0 && b[i] == ASCII.colon {
            i &+= 1
            while i < n && b[i] &- 48 < 10 { i &+= 1 }
            if i == n { return true }
        }
        i = 0
        if b[0] == UInt8(ascii: "[") {
            i = 1
            while i < n && b[i] != UInt8(ascii: "]") {
                guard ASCII.inSet(b[i], ASCII.ipLiteralMaskLow, ASCII.ipLiteralMaskHigh) else { return false }
                i += 1
            }
            guard i < n, i > 1 else { return false }  // no closing bracket, or "[]"
            i += 1
        } else {
            // reg-name / IPv4address: one mask test per byte; '%' (in the mask) is rare and
            // checked apart; ':' (not in it) ends the name.
            while i < n {
                let c = b[i]
                if !ASCII.inSet(c, ASCII.regNameMaskLow, ASCII.regNameMaskHigh) {
                    if c == ASCII.colon { break }
                    return false
                }
                if c == ASCII.percent {
                    guard i + 2 < n, ASCII.hexValue(b[i + 1]) != nil, ASCII.hexValue(b[i + 2]) != nil else { return false }
                    i += 2
                }
                i += 1
            }
        }
        if i == n { return true }
        guard b[i] == ASCII.colon else { return false }
        i += 1
        while i < n {
            guard b[i] &- 48 < 10 else { return false }
            i += 1
        }
        return true
    }

    /// unreserved and sub-delims: a reg-name's bytes but '%'.
    static let plainNameMaskLow: UInt64 = 0x2BFF_7FD2_0000_0000
    static let plainNameMaskHigh: UInt64 = 0x47FF_FFFE_87FF_FFFE

    /// The authority of an absolute-form target `scheme "://" authority [ path-abempty ] [ "?" query ]`:
    /// its range in `t`, or nil when `t` is not of that form.
    static func absoluteFormAuthority(_ t: UnsafeRawBufferPointer) -> Range<Int>? {
        let n = t.count
        guard n > 0, ASCII.lower(t[0]) >= 97 && ASCII.lower(t[0]) <= 122 else { return nil }
        var i = 1
        while i < n {
            let c = t[i]
            let l = ASCII.lower(c)
            if (l >= 97 && l <= 122) || (c >= 48 && c <= 57) || c == 43 || c == 45 || c == 46 { i += 1; continue }
            break
        }
        guard i + 2 < n, t[i] == ASCII.colon, t[i + 1] == ASCII.slash, t[i + 2] == ASCII.slash else { return nil }
        let start = i + 3
        var e = start
        while e < n && t[e] != ASCII.slash && t[e] != ASCII.question { e += 1 }
        return start..<e
    }

    /// What a Transfer-Encoding field value says, judged strictly (RFC 9112 6.1, 7): a list of
    /// tokens separated by `,` with optional spaces; no empty elements (`chunked,`, `,chunked`),
    /// no HTAB (`\tchunked\t` is read as chunked by some and not by others), no parameters.
    struct TransferCodings {
        var codings = 0
        var malformed = false
        /// Some coding follows `chunked` (chunked not final, or applied twice).
        var chunkedNotLast = false
        var lastIsChunked = false

        mutating func note(_ v: UnsafeRawBufferPointer) {
            let n = v.count
            var i = 0
            if n == 0 { malformed = true; return }
            while i <= n {
                var e = i
                while e < n && v[e] != ASCII.comma { e += 1 }
                var s = i, t = e
                while s < t && v[s] == ASCII.sp { s += 1 }
                while t > s && v[t - 1] == ASCII.sp { t -= 1 }
                if s == t { malformed = true; return }
                for k in s..<t where !ASCII.isTchar(v[k]) { malformed = true; return }
                if lastIsChunked { chunkedNotLast = true }
                lastIsChunked = ASCII.equalsLowercase(UnsafeRawBufferPointer(rebasing: v[s..<t]), "chunked")
                codings += 1
                i = e + 1
            }
        }
    }

    /// `*( ";" token [ "=" ( token / quoted-string ) ] )` with no whitespace anywhere (as llhttp;
    /// RFC 9112 7.1.1 allows BWS around ';' and '=', which only a lenient parser needs). An
    /// empty value after '=' is accepted, as llhttp does.
    static func isValidChunkExtensions(_ p: UnsafeRawBufferPointer) -> Bool {
        let n = p.count
        var i = 0
        while i < n {
            guard p[i] == ASCII.semicolon else { return false }
            i += 1
            let nameStart = i
            while i < n && ASCII.isTchar(p[i]) { i += 1 }
            guard i > nameStart else { return false }
            if i < n && p[i] == UInt8(ascii: "=") {
                i += 1
                if i < n && p[i] == UInt8(ascii: "\"") {
                    i += 1
                    var closed = false
                    while i < n {
                        let c = p[i]
                        if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                        if c == UInt8(ascii: "\\") {
                            guard i + 1 < n, isQuotedPairChar(p[i + 1]) else { return false }
                            i += 2
                            continue
                        }
                        guard isQdtext(c) else { return false }
                        i += 1
                    }
                    guard closed else { return false }
                } else {
                    while i < n && ASCII.isTchar(p[i]) { i += 1 }
                }
            }
        }
        return true
    }

    /// qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    @inline(__always) static func isQdtext(_ c: UInt8) -> Bool {
        c == ASCII.ht || c == ASCII.sp || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c != 0x7F)
    }

    /// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
    @inline(__always) static func isQuotedPairChar(_ c: UInt8) -> Bool {
        c == ASCII.ht || (c >= 0x20 && c != 0x7F)
    }

    /// Case-insensitive equality of two byte ranges (host names).
    static func equalsIgnoringCase(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        for i in 0..<a.count where ASCII.lower(a[i]) != ASCII.lower(b[i]) { return false }
        return true
    }
}
