import FuzzSupport
import HerdHTTP

// The chunked decoder: the fuzzer writes the body of a `Transfer-Encoding: chunked` request
// (after a fixed head). Properties:
// - fed in pieces (decoded framing released as a connection does) = fed in one buffer;
// - whatever the parser accepts, a plain reference decoder (below, lenient about extensions and
//   trailers, which it skips) accepts too, with the same body and the same message length.

let head = Array("POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)

/// RFC 9112 7.1 read naively: hex size, anything up to CRLF, data, CRLF; after the 0 chunk,
/// lines up to an empty one. Returns the body and the bytes used, nil when incomplete or invalid.
func referenceDecode(_ b: [UInt8]) -> (body: [UInt8], length: Int)? {
    func lineEnd(from i: Int) -> Int? {
        var k = i
        while k + 1 < b.count {
            if b[k] == 0x0D && b[k + 1] == 0x0A { return k }
            k += 1
        }
        return nil
    }
    var body: [UInt8] = []
    var i = 0
    while true {
        guard let e = lineEnd(from: i) else { return nil }
        var size = 0
        var k = i
        while k < e, let d = hexDigit(b[k]) {
            guard size < (1 << 40) else { return nil }
            size = size * 16 + d
            k += 1
        }
        guard k > i else { return nil }
        i = e + 2
        if size == 0 { break }
        guard b.count - i >= size + 2, b[i + size] == 0x0D, b[i + size + 1] == 0x0A else { return nil }
        body += b[i..<(i + size)]
        i += size + 2
    }
    while true {  // trailer section
        guard let e = lineEnd(from: i) else { return nil }
        let empty = e == i
        i = e + 2
        if empty { return (body, i) }
    }
}

func hexDigit(_ c: UInt8) -> Int? {
    switch c {
    case 0x30...0x39: Int(c - 0x30)
    case 0x41...0x46: Int(c - 0x41 + 10)
    case 0x61...0x66: Int(c - 0x61 + 10)
    default: nil
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = SplitInput(UnsafeRawBufferPointer(start: data, count: size))
    let limits = input.flag ? HTTPLimits(maxHeaderBytes: 256, maxHeaderCount: 4, maxBodyBytes: 64) : HTTPLimits()
    let message = head + input.payload
    var cuts = input.cuts
    cuts.insert(head.count, at: 0)
    let whole = outcomes(message, cuts: [message.count], limits: limits)
    let pieces = outcomes(message, cuts: cuts, limits: limits)
    fuzzRequire(pieces == whole, "pieces \(input.pieces) gave\n\(pieces)\none buffer gave\n\(whole)\nbody \(String(decoding: input.payload, as: UTF8.self).debugDescription)")

    var parser = HTTPRequestParser(limits: limits)
    if case .request(let request, let consumed) = parser.parse(message) {
        guard let ref = referenceDecode(input.payload) else {
            fuzzRequire(false, "parser accepted what the reference decoder refuses: \(String(decoding: input.payload, as: UTF8.self).debugDescription)")
            return 0
        }
        fuzzRequire(ref.body == request.body && head.count + ref.length == consumed,
                    "parser body \(request.body.count) B, \(consumed) consumed; reference \(ref.body.count) B, \(head.count + ref.length)")
    }
    return 0
}

@_cdecl("FuzzChunked_main")
public func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc: argc, argv: argv, testOneInput)
}
