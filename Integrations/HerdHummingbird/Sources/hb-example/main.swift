// The same app on two servers:
//   hb-example hummingbird HOST PORT       Hummingbird's own server (Application)
//   hb-example [herdd options...]          herdd: e.g. --listen 127.0.0.1:8080 --default-handler app
// HB_EXAMPLE_PUBLIC names the directory FileMiddleware serves (default ./public).
import Dispatch
import Foundation
import HBExampleApp
import HerdHummingbird
import Hummingbird

let publicDirectory = ProcessInfo.processInfo.environment["HB_EXAMPLE_PUBLIC"] ?? "public"
let arguments = CommandLine.arguments
if arguments.count == 4, arguments[1] == "hummingbird", let port = Int(arguments[3]) {
    let app = Application(router: buildRouter(publicDirectory: publicDirectory), configuration: .init(address: .hostname(arguments[2], port: port)))
    // Top-level code stays synchronous (herdd's main below must not run in the main actor's
    // async context); Hummingbird's server runs in a detached task (not on the main actor,
    // which the waiting main thread holds) while the main thread waits.
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { try await app.runService() } catch { FileHandle.standardError.write(Data("\(error)\n".utf8)); exit(1) }
        done.signal()
    }
    done.wait()
    exit(0)
}

// herdd: each worker builds the router (nothing is built before this call: see HerdHummingbird.main).
HerdHummingbird.main(name: "app") { buildRouter(publicDirectory: publicDirectory) }
