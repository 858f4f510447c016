import HerdSys

/// Range sets (RFC 9110 14.1.2) and `multipart/byteranges` bodies (14.6) for the static handler.
///
/// Refusals, as nginx and Apache do since CVE-2011-3192 (a few bytes of request asking for the
/// same large file many times over): more than `maxRanges` ranges, overlapping ranges, or a
/// total above the file's length get the whole file (200), which RFC 9110 14.2 permits.
/// A multipart payload is built in memory, so one above `maxMultipartBytes` also gets the
/// whole file (sent with sendfile).
package enum StaticRanges {
    /// Most ranges served as multipart (Apache's MaxRanges default is 200; 16 covers PDF
    /// viewers and download managers).
    package static let maxRanges = 16
    /// Largest multipart payload assembled in memory.
    package static let maxMultipartBytes = 1 << 20

    /// What a Range header asks for.
    package enum Outcome: Equatable, Sendable {
        /// The whole representation (no `bytes` unit, malformed, or refused).
        case full
        /// None of the ranges is satisfiable: 416.
        case unsatisfiable
        /// Satisfiable ranges in the client's order, inclusive bounds, clamped (one: plain 206).
        case ranges([ClosedRange<Int>])
    }

    /// Parses a Range value against a representation of `length` bytes.
    package static func parse(_ value: String, length: Int) -> Outcome {
        let v = Substring(value).drop(while: { $0 == " " })
        guard v.count > 6, v.prefix(6).lowercased() == "bytes=" else { return .full }
        var ranges: [ClosedRange<Int>] = []
        var specs = 0
        // Empty list elements are allowed (RFC 9110 5.6.1) and skipped.
        for element in v.dropFirst(6).split(separator: ",") {
            let spec = element.trimmingSpacesAndTabs()
            if spec.isEmpty { continue }
            specs += 1
            if specs > maxRanges { return .full }
            switch StaticConditions.parseRange("bytes=" + spec, length: length) {
            case .full: return .full  // one malformed spec: the header is ignored
            case .unsatisfiable: continue  // dropped; 416 only if none is left
            case .range(let first, let last): ranges.append(first...last)
            }
        }
        guard specs > 0 else { return .full }
        guard !ranges.isEmpty else { return .unsatisfiable }
        if ranges.count > 1 {
            let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
            for (a, b) in zip(sorted, sorted.dropFirst()) where b.lowerBound <= a.upperBound { return .full }
            let total = ranges.reduce(0) { $0 + $1.count }
            if total > length || total > maxMultipartBytes { return .full }
        }
        return .ranges(ranges)
    }

    /// The multipart/byteranges payload for `ranges` of the open file `fd` (each part with its
    /// `Content-Type` and `Content-Range`); nil when the file cannot be read (shrunk meanwhile).
    package static func multipartBody(fd: Int32, ranges: [ClosedRange<Int>], length: Int,
                                      contentType: String, boundary: String) -> [UInt8]? {
        multipartBody(ranges: ranges, length: length, contentType: contentType, boundary: boundary) {
            appendPread(fd, $0, to: &$1)
        }
    }

    /// The multipart/byteranges payload, each part's bytes appended by `appendRange` (false:
    /// the file no longer has them, and the payload is nil).
    package static func multipartBody(ranges: [ClosedRange<Int>], length: Int, contentType: String, boundary: String,
                                      appendRange: (ClosedRange<Int>, inout [UInt8]) -> Bool) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(ranges.reduce(0) { $0 + $1.count } + ranges.count * 128)
        for r in ranges {
            out += Array("\r\n--\(boundary)\r\nContent-Type: \(contentType)\r\nContent-Range: bytes \(r.lowerBound)-\(r.upperBound)/\(length)\r\n\r\n".utf8)
            guard appendRange(r, &out) else { return nil }
        }
        out += Array("\r\n--\(boundary)--\r\n".utf8)
        return out
    }

    /// Appends bytes `range` of `fd` (pread, the fd's offset untouched) to `out`; false (with
    /// `out` unchanged) on an error or end of file before the range's end.
    package static func appendPread(_ fd: Int32, _ range: ClosedRange<Int>, to out: inout [UInt8]) -> Bool {
        let start = out.count
        out += [UInt8](repeating: 0, count: range.count)
        var done = 0
        while done < range.count {
            let result = out.withUnsafeMutableBytes {
                Sys.pread(fd, $0.baseAddress.map { $0 + start + done }, range.count - done, at: range.lowerBound + done)
            }
            guard case .done(let n) = result, n > 0 else {
                out.removeSubrange(start...)
                return false
            }
            done += n
        }
        return true
    }

    /// A boundary that does not occur in the parts with overwhelming probability (64 random bits).
    package static func makeBoundary() -> String {
        let hex = String(UInt64.random(in: 1...UInt64.max), radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
