import FuzzSupport
@testable import HerdD

// `--listen` / `listen =` specs (ListenSpec), one per input line. Properties:
// - an accepted spec prints (`description`, the form the master hands to workers and logs) as
//   text that parses back to the same spec;
// - the accepted names survive LISTEN_FDNAMES: a hot upgrade passes them joined with ':'
//   (Master/Upgrade.swift) and sd_listen_fds_with_names splits them at ':' again.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(UnsafeRawBufferPointer(start: data, count: size))
    var names: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        guard let spec = try? ListenSpec(parsing: String(line)) else { continue }
        do {
            let again = try ListenSpec(parsing: spec.description)
            fuzzRequire(again == spec, "\(String(line).debugDescription) -> \(spec) -> \(again)")
        } catch {
            fuzzRequire(false, "\(String(line).debugDescription) accepted, its description \(spec) refused: \(error)")
        }
        names.append(spec.name)
    }
    if !names.isEmpty {
        let fdnames = names.joined(separator: ":")
        let split = fdnames.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        fuzzRequire(split == names, "LISTEN_FDNAMES=\(fdnames.debugDescription) splits into \(split), not \(names)")
    }
    return 0
}

@_cdecl("FuzzListen_main")
public func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc: argc, argv: argv, testOneInput)
}
