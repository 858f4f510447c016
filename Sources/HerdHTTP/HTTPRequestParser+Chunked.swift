import HerdLibc

// HTTPRequestParser: a chunked body decoded as it arrives, then its trailers.
extension HTTPRequestParser {
    // MARK: chunked body

    /// Decodes as much of a chunked body as is available, resuming at `chunkPos`.
    mutating func decodeChunked(_ buf: UnsafeRawBufferPointer) -> Progress {
        let n = buf.count
        guard let base = buf.baseAddress, head != nil else { return .needMore }
        while true {
            switch chunkPhase {
            case .size:
                // chunk-size [ chunk-ext ] CRLF
                let avail = n - chunkPos
                guard avail > 0, let found = memchr(base + chunkPos, Int32(ASCII.lf), avail) else {
                    if avail > HTTPRequestParser.maxChunkLine { return .error(status: 400, reason: "chunk size line too long") }
                    return .needMore
                }
                let lf = UnsafeRawPointer(found) - base
                guard lf > chunkPos && buf[lf - 1] == ASCII.cr else { return .error(status: 400, reason: "bare LF in chunk size line") }
                let e = lf - 1
                if e - chunkPos > HTTPRequestParser.maxChunkLine { return .error(status: 400, reason: "chunk size line too long") }
                var i = chunkPos
                var size = 0
                while i < e, let d = ASCII.hexValue(buf[i]) {
                    // Saturate instead of overflowing: anything this big is over the limit anyway.
                    size = size > (Int.max - 15) / 16 ? Int.max : size * 16 + d
                    i += 1
                }
                guard i > chunkPos else { return .error(status: 400, reason: "invalid chunk size") }
                // No whitespace after the size: extensions follow at once, or the CRLF.
                if i < e && !StrictSyntax.isValidChunkExtensions(UnsafeRawBufferPointer(rebasing: buf[i..<e])) {
                    return .error(status: 400, reason: buf[i] == ASCII.semicolon ? "invalid chunk extension" : "invalid chunk size")
                }
                // Only decoded bytes count against the limit.
                if size > limits.maxBodyBytes - bodyDecoded { return .error(status: 413, reason: "body too large") }
                chunkPos = lf + 1
                chunkPhase = size == 0 ? .trailer : .data(remaining: size)
            case .data(let remaining):
                let take = min(remaining, n - chunkPos)
                if take > 0 {
                    chunkBody.appendBytes(UnsafeRawBufferPointer(rebasing: buf[chunkPos..<(chunkPos + take)]))
                    chunkPos += take
                    bodyDecoded += take
                }
                if take < remaining {
                    chunkPhase = .data(remaining: remaining - take)
                    return .needMore
                }
                chunkPhase = .dataEnd
            case .dataEnd:
                // Exactly CRLF after the data (a bare LF is the class of Go's CVE-2025-22871).
                guard chunkPos < n else { return .needMore }
                guard buf[chunkPos] == ASCII.cr else { return .error(status: 400, reason: "missing CRLF after chunk data") }
                guard chunkPos + 1 < n else { return .needMore }
                guard buf[chunkPos + 1] == ASCII.lf else { return .error(status: 400, reason: "missing CRLF after chunk data") }
                chunkPos += 2
                chunkPhase = .size
            case .trailer:
                // *( field-line CRLF ) CRLF -- parsed for syntax, then discarded.
                let avail = n - chunkPos
                guard avail > 0, let found = memchr(base + chunkPos, Int32(ASCII.lf), avail) else {
                    if trailerBytes + avail > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                    return .needMore
                }
                let lf = UnsafeRawPointer(found) - base
                // The limit first, on the bytes before this LF, as the branch above judges them
                // when they arrive without it: the verdict must not depend on where the input was
                // cut (found by Tests/fuzz: 431 in pieces, 400 in one buffer).
                if trailerBytes + lf - chunkPos > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                guard lf > chunkPos && buf[lf - 1] == ASCII.cr else { return .error(status: 400, reason: "bare LF in trailer section") }
                let e = lf - 1
                trailerBytes += lf + 1 - chunkPos
                if trailerBytes > limits.maxHeaderBytes { return .error(status: 431, reason: "trailers too large") }
                if e == chunkPos {
                    // End of message.
                    completed = head.take()?.request
                    completed?.body = chunkBody
                    return .request(consumed: lf + 1)
                }
                if let err = HTTPRequestParser.checkTrailer(buf, chunkPos..<e) { return err }
                trailerCount += 1
                if trailerCount > limits.maxHeaderCount { return .error(status: 431, reason: "too many trailer fields") }
                chunkPos = lf + 1
            }
        }
    }

    /// Minimal syntax check of a trailer field line: `token ":" value` without controls.
    static func checkTrailer(_ buf: UnsafeRawBufferPointer, _ r: Range<Int>) -> Progress? {
        var i = r.lowerBound
        while i < r.upperBound && buf[i] != ASCII.colon {
            guard ASCII.isTchar(buf[i]) else { return .error(status: 400, reason: "invalid trailer field") }
            i += 1
        }
        guard i > r.lowerBound, i < r.upperBound else { return .error(status: 400, reason: "invalid trailer field") }
        // Framing fields have no place in trailers (RFC 9110 6.5.1); llhttp refuses them too.
        let name = UnsafeRawBufferPointer(rebasing: buf[r.lowerBound..<i])
        if ASCII.equalsLowercase(name, "content-length") || ASCII.equalsLowercase(name, "transfer-encoding") {
            return .error(status: 400, reason: "framing field in trailers")
        }
        for k in i..<r.upperBound {
            let c = buf[k]
            if (c < 0x20 && c != ASCII.ht) || c == 0x7F { return .error(status: 400, reason: "invalid trailer field") }
        }
        return nil
    }
}
