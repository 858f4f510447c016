#if DEBUG
import Herd

/// Debug builds only: a router with synchronous and async routes, registered as the handler
/// `router-demo`, so that the integration tests drive async routes through the real binary
/// (Tests/integration/test_router_async.py). Release builds (the .deb) do not have it.
enum RouterDemo {
    struct Failure: Error { let detail = "not for the client" }

    static func register() {
        HandlerRegistry.register("router-demo") { _ in make().handler() }
    }

    static func make() -> Router {
        let router = Router()
        router.add(middleware: RequestIDMiddleware())
        router.get("sync", mayBlock: false) { _, context in "sync \(context.pid)\n" }
        router.get("async/:ms") { _, context async throws -> String in
            let ms = try context.parameters.require("ms", as: Int.self)
            try await Task.sleep(for: .milliseconds(ms))
            return "slept \(ms) \(context.pid)\n"
        }
        router.get("async-teapot") { _, _ async throws -> String in
            await Task.yield()
            throw HTTPError(.init(code: 418), message: "short and stout")
        }
        router.get("async-error") { _, _ async throws -> String in
            await Task.yield()
            throw Failure()
        }
        return router
    }
}
#endif
