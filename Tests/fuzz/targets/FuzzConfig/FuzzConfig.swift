import FuzzSupport
@testable import HerdD

// The config file parser (`key = value` lines, `#` comments). Whatever it accepts must survive
// the master -> worker hand-over: the worker rebuilds its settings from `serialized()` with
// `deserialize`, and must end up with exactly the master's configuration.

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = fuzzText(UnsafeRawBufferPointer(start: data, count: size))
    var config = ServerConfig()
    do { try config.apply(fileText: text, path: "fuzz.conf") } catch { return 0 }
    let items = config.serialized()
    do {
        let back = try ServerConfig.deserialize(items)
        fuzzRequire(back == config, "hand-over changed the config: \(items)\nfile \(text.debugDescription)")
    } catch {
        fuzzRequire(false, "a worker refuses the master's config: \(error)\n\(items)\nfile \(text.debugDescription)")
    }
    _ = try? config.validated()
    return 0
}

@_cdecl("FuzzConfig_main")
public func main(argc: Int32, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc: argc, argv: argv, testOneInput)
}
