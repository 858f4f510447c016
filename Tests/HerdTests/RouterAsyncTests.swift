@testable import Herd
import Synchronization
import XCTest

struct Todo: Codable, Equatable { let id: Int; let title: String }

/// Records around async routes ("name>>", "<<name"), and as `Tracing` around sync ones.
struct AsyncTracing: AsyncRouterMiddleware {
    let name: String
    let trace: Mutex<[String]>.Shared

    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        try Tracing(name: name, trace: trace).handle(request, context: context, next: next)
    }

    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) async throws -> HTTPResponse) async throws -> HTTPResponse {
        trace.append("\(name)>>")
        defer { trace.append("<<\(name)") }
        return try await next(request, context)
    }
}

extension TestClient {
    /// Sends the request as the worker does: one `respond`, then its async work awaited.
    func sendAsync(_ method: String, _ target: String, headers: HTTPHeaders = [:], body: String = "") async throws -> HTTPResponse {
        let request = HTTPRequest(method: method, target: target, headers: headers, body: Array(body.utf8))
        return try await handler.respond(to: request, context: context).awaitResponse()
    }

    func isAsync(_ method: String, _ target: String) -> Bool {
        handler.respond(to: HTTPRequest(method: method, target: target), context: context).isAsync
    }
}

/// The synchronous `handle` (in an async function, Swift prefers the async overload).
func syncHandle(_ handler: RouterHandler, _ request: HTTPRequest, _ context: HandlerContext) -> HTTPResponse {
    handler.handle(request, context: context)
}

/// Async routes beside sync ones: overload choice, answers, errors, middleware, one `respond`
/// per request whose async work carries its own match, and the blocking gate.
final class RouterAsyncTests: XCTestCase {
    func testClosureAsyncnessPicksTheKindWithoutAmbiguity() {
        let router = Router()
        router.get("sync-text") { _, _ in "plain" }
        router.get("sync-json") { _, _ in Todo(id: 1, title: "a") }
        router.get("sync-throwing") { _, context -> String in try context.parameters.require("none") }
        router.post("sync-status") { _, _ in HTTPStatus.created }
        router.get("sync-mayblock", mayBlock: false) { _, _ in "x" }
        router.get("async-text") { _, _ async throws in
            try await Task.sleep(for: .milliseconds(1))
            return "slept"
        }
        router.get("async-json") { _, _ async in Todo(id: 2, title: "b") }
        router.put("async-status") { _, _ async -> HTTPStatus in await Task.yield(); return .accepted }
        router.group("g").delete(":id") { _, context async throws -> String in
            await Task.yield()
            return try context.parameters.require("id")
        }
        let client = TestClient(router)
        for path in ["/sync-text", "/sync-json", "/sync-throwing", "/sync-mayblock"] {
            XCTAssertFalse(client.isAsync("GET", path), path)
        }
        XCTAssertFalse(client.isAsync("POST", "/sync-status"))
        XCTAssertTrue(client.isAsync("GET", "/async-text"))
        XCTAssertTrue(client.isAsync("HEAD", "/async-text"))
        XCTAssertTrue(client.isAsync("GET", "/async-json"))
        XCTAssertTrue(client.isAsync("PUT", "/async-status"))
        XCTAssertTrue(client.isAsync("DELETE", "/g/7"))
        XCTAssertFalse(client.isAsync("GET", "/missing"))   // 404: answered synchronously
        XCTAssertFalse(client.isAsync("POST", "/async-text")) // 405 too
    }

    func testAsyncRoutesAnswer() async throws {
        let router = Router()
        router.get("todos/:id") { _, context async throws -> Todo in
            await Task.yield()
            return Todo(id: try context.parameters.require("id", as: Int.self), title: "t")
        }
        router.get("sync") { _, _ in "sync" }
        let client = TestClient(router)
        let found = try await client.sendAsync("GET", "/todos/42")
        XCTAssertEqual(found.status, 200)
        XCTAssertEqual(found.headers["Content-Type"], "application/json")
        XCTAssertEqual(found.json?["id"] as? Int, 42)
        let sync = try await client.sendAsync("GET", "/sync")
        XCTAssertEqual(sync.text, "sync")
        let badID = try await client.sendAsync("GET", "/todos/x")
        XCTAssertEqual(badID.status, 400)
        let missing = try await client.sendAsync("GET", "/nothing")
        XCTAssertEqual(missing.status, 404)
        let wrongMethod = try await client.sendAsync("POST", "/todos/1")
        XCTAssertEqual(wrongMethod.status, 405)
        XCTAssertEqual(wrongMethod.headers["Allow"], "GET, HEAD")
    }

    func testHTTPErrorFromAnAsyncRouteMapsAsFromASyncRoute() async throws {
        let router = Router()
        let error = HTTPError(.init(code: 418), headers: ["X-Why": "tea"], message: "short and stout")
        router.get("sync") { _, _ -> String in throw error }
        router.get("async") { _, _ async throws -> String in await Task.yield(); throw error }
        let client = TestClient(router)
        for accept in ["application/json", "text/html"] {
            let sync = try await client.sendAsync("GET", "/sync", headers: ["Accept": accept])
            let async = try await client.sendAsync("GET", "/async", headers: ["Accept": accept])
            XCTAssertEqual(async.status, 418)
            XCTAssertEqual(async.status, sync.status)
            XCTAssertEqual(async.headers["X-Why"], "tea")
            XCTAssertEqual(async.headers["Content-Type"], sync.headers["Content-Type"])
            XCTAssertEqual(async.text, sync.text)
        }
    }

    func testOtherErrorsAre500WithTheRequestIDAndCancellationPassesThrough() async throws {
        let router = Router()
        router.get("secret") { _, _ async throws -> String in await Task.yield(); throw Secret() }
        router.get("cancelled") { _, _ async throws -> String in throw CancellationError() }
        let client = TestClient(router)
        let failed = try await client.sendAsync("GET", "/secret", headers: ["X-Request-ID": "req-77"])
        XCTAssertEqual(failed.status, 500)
        XCTAssertTrue(failed.text.contains("req-77"), failed.text)
        XCTAssertFalse(failed.text.contains("hunter2"))
        do {
            _ = try await client.sendAsync("GET", "/cancelled")
            XCTFail("cancellation became a response")
        } catch is CancellationError {}
    }

    func testAsyncCapableMiddlewareRunsAroundAsyncRoutesInOrder() async throws {
        let trace = Mutex<[String]>.Shared()
        let router = Router()
        router.add(middleware: AsyncTracing(name: "outer", trace: trace))
        router.add(middleware: RequestIDMiddleware())
        let api = router.group("api").add(middleware: AsyncTracing(name: "api", trace: trace))
            .add(middleware: CORSMiddleware(allowOrigin: .all))
        api.get("a") { _, _ async in trace.append("route"); return "a" }
        api.get("s") { _, _ in trace.append("sync-route"); return "s" }
        api.get("fail") { _, _ async throws -> String in throw HTTPError(.conflict) }
        let client = TestClient(router)
        let response = try await client.sendAsync("GET", "/api/a", headers: ["X-Request-ID": "r1", "Origin": "http://x"])
        XCTAssertEqual(response.text, "a")
        XCTAssertEqual(response.headers["X-Request-ID"], "r1")
        XCTAssertEqual(response.headers["Access-Control-Allow-Origin"], "*")
        XCTAssertEqual(trace.take(), ["outer>>", "api>>", "route", "<<api", "<<outer"])
        _ = try await client.sendAsync("GET", "/api/s")
        XCTAssertEqual(trace.take(), ["outer>", "api>", "sync-route", "<api", "<outer"])
        let failed = try await client.sendAsync("GET", "/api/fail", headers: ["X-Request-ID": "r2", "Origin": "http://x"])
        XCTAssertEqual(failed.status, 409)
        XCTAssertEqual(failed.headers["X-Request-ID"], "r2")
        XCTAssertEqual(failed.headers["Access-Control-Allow-Origin"], "*")
        let preflight = try await client.sendAsync("OPTIONS", "/api/a", headers: ["Origin": "http://x", "Access-Control-Request-Method": "GET"])
        XCTAssertEqual(preflight.status, 405)  // group CORS never sees a path's other methods (router-level CORS does)
    }

    func testSyncOnlyMiddlewareAroundAsyncRoutesIsNamed() {
        let trace = Mutex<[String]>.Shared()
        let middlewares: [any RouterMiddleware] = [RequestLogMiddleware(), Tracing(name: "t", trace: trace), CORSMiddleware()]
        switch AsyncRouterMiddlewareCheck.asyncVersions(of: middlewares) {
        case .success: XCTFail("a sync-only middleware passed")
        case .failure(let error):
            XCTAssertEqual(error.typeNames, ["Tracing"])
            XCTAssertTrue("\(error)".contains("AsyncRouterMiddleware"))
        }
        let ok = AsyncRouterMiddlewareCheck.asyncVersions(of: [RequestLogMiddleware(), RequestIDMiddleware(), CORSMiddleware()])
        XCTAssertEqual((try? ok.get())?.count, 3)
        // A router with sync-only middleware but no async routes builds as before.
        let router = Router()
        router.add(middleware: Tracing(name: "t", trace: trace))
        router.get("s") { _, _ in "s" }
        XCTAssertEqual(TestClient(router).send("GET", "/s").text, "s")
    }

    /// The worker calls `respond` for each request of a turn, then runs the async work of
    /// each later, on the loop: every work answers its own request, whatever was matched in
    /// between (the router keeps nothing between calls), and a sync route is answered in
    /// `respond` itself.
    func testEachAsyncWorkCarriesItsOwnMatch() async throws {
        let router = Router()
        router.get("s/:x") { _, context in try context.parameters.require("x") }
        router.get("a/:x") { _, context async throws in try context.parameters.require("x") }
        router.post("a/:x") { _, context async throws in "posted " + (try context.parameters.require("x")) }
        let handler = router.handler()
        let context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
        var pending: [(String, HandlerOutcome)] = []
        for i in 0..<8 {
            let method = i % 2 == 0 ? "GET" : "POST"
            let work = handler.respond(to: HTTPRequest(method: method, target: "/a/\(i)"), context: context)
            XCTAssertTrue(work.isAsync)
            pending.append((method == "GET" ? "\(i)" : "posted \(i)", work))
            // A sync request between two async ones: answered now, with its own parameter.
            guard case .response(let now) = handler.respond(to: HTTPRequest(target: "/s/x\(i)"), context: context) else {
                return XCTFail("a sync route was not answered in respond")
            }
            XCTAssertEqual(now.text, "x\(i)")
        }
        for (expected, work) in pending.reversed() {
            let answered = try await work.awaitResponse()
            XCTAssertEqual(answered.text, expected)
        }
        // The synchronous `handle` answers sync routes and refuses async ones (500).
        XCTAssertEqual(syncHandle(handler, HTTPRequest(target: "/s/y"), context).text, "y")
        XCTAssertEqual(syncHandle(handler, HTTPRequest(target: "/a/y"), context).status, 500)
    }

    func testAsyncRoutesNeverOpenTheBlockingGate() async throws {
        let router = Router()
        router.get("db") { _, _ in "rows" }
        router.get("pg") { _, _ async in "row" }
        let handler = router.handler()
        XCTAssertTrue(handler.mayBlock)
        let gate = BlockingGate()
        var context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
        context.blockingGate = gate
        gate.arm(fd: -1)
        let pg = handler.respond(to: HTTPRequest(target: "/pg"), context: context)
        XCTAssertTrue(pg.isAsync)
        let row = try await pg.awaitResponse()
        XCTAssertEqual(row.text, "row")
        XCTAssertFalse(gate.opened)
        XCTAssertFalse(handler.respond(to: HTTPRequest(target: "/db"), context: context).isAsync)
        XCTAssertTrue(gate.opened)
        // A router of async routes only never blocks: no dispatch set up for its listener.
        let asyncOnly = Router()
        asyncOnly.get("pg") { _, _ async in "row" }
        XCTAssertFalse(asyncOnly.handler().mayBlock)
    }
}
