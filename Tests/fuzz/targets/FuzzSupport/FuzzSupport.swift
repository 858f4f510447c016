import HerdHTTP

// Shared by the libFuzzer targets (Tests/fuzz/run.sh, docs/fuzzing.md).

/// A violated property is a crash: print what was seen, then trap, so libFuzzer saves the input
/// as `crash-<sha1>` and the run fails.
public func fuzzRequire(_ condition: Bool, _ message: @autoclosure () -> String) {
    if condition { return }
    fatalError("fuzz property violated: \(message())")
}

/// The fuzzer's input as text (invalid UTF-8 repaired: the parsers under test take Strings).
public func fuzzText(_ data: UnsafeRawBufferPointer) -> String {
    String(decoding: data, as: UTF8.self)
}

/// An input whose first bytes choose how the rest is cut into pieces, so the fuzzer explores the
/// split points too: byte 0 (low 3 bits) = n, bytes 1...n = piece sizes (each byte + 1, used in
/// turn); n = 0 feeds byte by byte. Bit 7 of byte 0 is a free flag for the target (small limits).
public struct SplitInput {
    public let flag: Bool
    public let pieces: [Int]
    public let payload: [UInt8]

    public init(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        guard let first = bytes.first else {
            flag = false
            pieces = [1]
            payload = []
            return
        }
        flag = first & 0x80 != 0
        let n = min(Int(first & 0x07), bytes.count - 1)
        let sizes = bytes[1..<(1 + n)].map { Int($0) + 1 }
        pieces = sizes.isEmpty ? [1] : sizes
        payload = Array(bytes[(1 + n)...])
    }

    /// The piece sizes covering the whole payload, cycling through `pieces`.
    public var cuts: [Int] {
        var out: [Int] = []
        var left = payload.count
        var i = 0
        while left > 0 {
            let step = min(left, pieces[i % pieces.count])
            out.append(step)
            left -= step
            i += 1
        }
        return out
    }
}

/// The C signature of a libFuzzer test function (`LLVMFuzzerTestOneInput`).
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback) -> Int32

/// The program's entry: libFuzzer's driver (the same options as libFuzzer's own `main`).
/// SwiftPM links an executable target with `main` aliased to `<Target>_main`, so each target
/// defines that symbol and calls this; libFuzzer's `main` is then never linked in.
public func runFuzzer(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ callback: FuzzCallback) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}

// MARK: the request parser as a connection drives it

/// Everything a handler could observe of one request, as one comparable string.
public func describe(_ r: HTTPRequest) -> String {
    let fields = r.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
    return "\(r.method) \(r.target) path=\(r.path) query=\(r.query ?? "nil") minor=\(r.versionMinor) "
        + "keepAlive=\(r.keepAlive)\n\(fields)\nbody=\(r.body)"
}

/// The requests parsed from `data` delivered in pieces of the given sizes, then the final state.
package func outcomes(_ data: [UInt8], cuts: [Int], limits: HTTPLimits) -> [String] {
    var parser = HTTPRequestParser(limits: limits)
    var buf: [UInt8] = []
    var out: [String] = []
    var fed = 0
    for size in cuts {
        buf.append(contentsOf: data[fed..<(fed + size)])
        fed += size
        while !buf.isEmpty {
            switch parser.parse(buf) {
            case .request(let req, let consumed):
                fuzzRequire(consumed > 0 && consumed <= buf.count, "consumed \(consumed) of \(buf.count)")
                out.append(describe(req))
                buf.removeFirst(consumed)
                continue
            case .error(let status, let reason):
                fuzzRequire((400...599).contains(status) && !reason.isEmpty, "bad error \(status) '\(reason)'")
                out.append("error \(status)")
                return out
            case .needMore:
                let released = parser.releaseDecodedInput()
                fuzzRequire(released >= 0 && released <= buf.count, "released \(released) of \(buf.count)")
                buf.removeFirst(released)
            }
            break
        }
    }
    out.append(parser.hasPartialRequest || !buf.isEmpty ? "needMore (partial)" : "needMore")
    return out
}

