import Hummingbird

// bench/run "async": the same routes as herdd's debug handler, on Hummingbird's own server.
//   hummingbird-peer PORT
// GET /async-sleep/<ms>  awaits Task.sleep, then "slept <ms>\n"
// GET /                  "hello\n"
let port = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 8080 : 8080
let router = Router()
router.get("/async-sleep/:ms") { _, context -> String in
    let ms = try context.parameters.require("ms", as: Int.self)
    try await Task.sleep(for: .milliseconds(min(max(ms, 0), 60_000)))
    return "slept \(ms)\n"
}
router.get("/") { _, _ -> String in "hello\n" }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
