import FuzzSupport
import HerdHTTP

// The request parser fed as a connection feeds it (pieces cut at fuzzer-chosen points, decoded
// chunk framing released after every `.needMore`) must find exactly what it finds in one buffer:
// the same requests (every field, the body, keep-alive) and the same final verdict.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

func fuzzOne(_ data: UnsafeRawBufferPointer) {
    let input = SplitInput(data)
    let limits = input.flag
        ? HTTPLimits(maxRequestLine: 64, maxHeaderBytes: 128, maxHeaderCount: 5, maxBodyBytes: 32)
        : HTTPLimits()
    let whole = outcomes(input.payload, cuts: input.payload.isEmpty ? [] : [input.payload.count], limits: limits)
    let pieces = outcomes(input.payload, cuts: input.cuts, limits: limits)
    fuzzRequire(pieces == whole, "pieces \(input.pieces) gave\n\(pieces)\none buffer gave\n\(whole)\ninput \(String(decoding: input.payload, as: UTF8.self).debugDescription)")
}

@_cdecl("FuzzHTTPParser_main")
public func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc: argc, argv: argv, testOneInput)
}
