import FuzzSupport
import Handlers
import HerdHTTP

// The static handler's request fields: Range, If-None-Match / If-Match, the HTTP dates of
// If-Modified-Since / If-Unmodified-Since / If-Range, and Accept-Encoding. Byte 0 chooses the
// field, bytes 1-3 a representation length (0 to 16 MiB); the rest is the field value.

func checkRange(_ value: String, length: Int) {
    switch StaticRanges.parse(value, length: length) {
    case .full, .unsatisfiable: break
    case .ranges(let ranges):
        fuzzRequire((1...StaticRanges.maxRanges).contains(ranges.count), "\(ranges.count) ranges")
        for r in ranges {
            fuzzRequire(r.lowerBound >= 0 && r.upperBound < length, "range \(r) outside 0..<\(length)")
        }
        if ranges.count > 1 {
            let sorted = ranges.sorted { $0.lowerBound < $1.lowerBound }
            for (a, b) in zip(sorted, sorted.dropFirst()) {
                fuzzRequire(a.upperBound < b.lowerBound, "overlapping ranges \(a) and \(b) served")
            }
            let total = ranges.reduce(0) { $0 + $1.count }
            fuzzRequire(total <= length && total <= StaticRanges.maxMultipartBytes, "ranges total \(total) of \(length)")
        }
    }
    // One range spec: the set parser and the single-range parser agree.
    let single = StaticConditions.parseRange(value, length: length)
    if !value.contains(",") {
        let set = StaticRanges.parse(value, length: length)
        switch single {
        case .full: fuzzRequire(set == .full, "single says full, set says \(set)")
        case .unsatisfiable: fuzzRequire(set == .unsatisfiable, "single says 416, set says \(set)")
        case .range(let first, let last): fuzzRequire(set == .ranges([first...last]), "single says \(first)-\(last), set says \(set)")
        }
    }
}

func checkDate(_ value: String) {
    guard let t = StaticConditions.parseHTTPDate(value) else { return }
    // Whatever was accepted (any of the three forms, out-of-range days normalised by timegm)
    // is one instant, and its IMF-fixdate reads back as the same instant.
    let formatted = HTTPDate.format(epochSeconds: t)
    fuzzRequire(StaticConditions.parseHTTPDate(formatted) == t, "\(value.debugDescription) -> \(t) -> \(formatted)")
}

func checkTags(_ value: String) {
    guard let list = StaticConditions.parseTagList(value) else { return }
    fuzzRequire(!list.isEmpty, "empty tag list accepted")
    for m in list {
        guard case .tag(let opaque, let weak) = m else {
            fuzzRequire(list == [.any], "* mixed with tags")
            continue
        }
        // Bytes, not Characters: a quote followed by a combining mark is one Character.
        let u = Array(opaque.utf8)
        fuzzRequire(u.count >= 2 && u.first == 0x22 && u.last == 0x22, "tag \(opaque.debugDescription)")
        fuzzRequire(StaticConditions.noneMatchHits(list, etag: opaque), "If-None-Match misses its own tag \(opaque)")
        fuzzRequire(StaticConditions.strongMatch(list, etag: opaque) || weak, "If-Match misses its own strong tag \(opaque)")
    }
}

func asciiUppercased(_ s: String) -> String {
    String(decoding: s.utf8.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }, as: UTF8.self)
}

func checkAcceptEncoding(_ value: String) {
    // Content-coding names and the q parameter are case-insensitive.
    for coding in ["gzip", "br"] {
        let a = StaticConditions.accepts(value, coding)
        fuzzRequire(a == StaticConditions.accepts(asciiUppercased(value), coding), "case changes the verdict for \(coding): \(value.debugDescription)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard bytes.count >= 4 else { return 0 }
    let length = Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
    let value = fuzzText(UnsafeRawBufferPointer(rebasing: bytes[4...]))
    switch bytes[0] % 4 {
    case 0: checkRange(value, length: length)
    case 1: checkDate(value)
    case 2: checkTags(value)
    default: checkAcceptEncoding(value)
    }
    return 0
}

@_cdecl("FuzzStaticHeaders_main")
public func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc: argc, argv: argv, testOneInput)
}
