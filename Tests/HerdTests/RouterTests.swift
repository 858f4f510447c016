@testable import Herd
import Handlers
import Synchronization
import XCTest

/// Routing: parameters, wildcards, HEAD, 405 with Allow, 404, groups, last registration wins.
final class RouterTests: XCTestCase {
    func testParametersAndTypedRequire() {
        let router = Router()
        router.get("notes/:id") { _, context in "note \(try context.parameters.require("id", as: Int.self))" }
        router.get("users/{name}/posts/:post") { _, context in
            "\(context.parameters.get("name") ?? "-")/\(context.parameters.get("post", as: Int.self) ?? -1)"
        }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/notes/42").text, "note 42")
        XCTAssertEqual(client.send("GET", "/notes/42/").text, "note 42")
        XCTAssertEqual(client.send("GET", "/users/ann/posts/7").text, "ann/7")
        let bad = client.send("GET", "/notes/abc")
        XCTAssertEqual(bad.status, 400)
        XCTAssertEqual(bad.json?["error"] as? String, "path parameter 'id' is not a valid Int: 'abc'")
    }

    func testConstantsBeforeParametersWithBacktracking() {
        let router = Router()
        router.get("a/new") { _, _ in "constant" }
        router.get("a/:id") { _, c in "param \(c.parameters.get("id") ?? "")" }
        router.get("a/:id/edit") { _, c in "edit \(c.parameters.get("id") ?? "")" }
        router.get("a/new/x/y") { _, _ in "deep" }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/a/new").text, "constant")
        XCTAssertEqual(client.send("GET", "/a/7").text, "param 7")
        XCTAssertEqual(client.send("GET", "/a/new/edit").text, "edit new")  // backtracks to :id
        XCTAssertEqual(client.send("GET", "/a/new/x/y").text, "deep")
        XCTAssertEqual(client.send("GET", "/a/new/x").status, 404)
    }

    func testWildcards() {
        let router = Router()
        router.get("files/**") { _, c in "tail " + c.parameters.getCatchAll().joined(separator: ",") }
        router.get("img/*/thumb") { _, _ in "thumb" }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/files/a/b/c.txt").text, "tail a,b,c.txt")
        XCTAssertEqual(client.send("GET", "/files").text, "tail ")
        XCTAssertEqual(client.send("GET", "/img/x/thumb").text, "thumb")
        XCTAssertEqual(client.send("GET", "/img/x/y/thumb").status, 404)
    }

    func testHeadIsAnsweredByGetAnd405ListsAllow() {
        let router = Router()
        router.get("notes") { _, _ in "list" }
        router.post("notes") { _, _ in HTTPStatus.created }
        router.delete("notes/:id") { _, _ in HTTPStatus.noContent }
        let client = TestClient(router)
        let head = client.send("HEAD", "/notes")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(client.send("POST", "/notes").status, 201)
        let put = client.send("PUT", "/notes")
        XCTAssertEqual(put.status, 405)
        XCTAssertEqual(put.headers["Allow"], "GET, HEAD, POST")
        let get = client.send("GET", "/notes/3")
        XCTAssertEqual(get.status, 405)
        XCTAssertEqual(get.headers["Allow"], "DELETE")
        let missing = client.send("GET", "/nothing")
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.json?["status"] as? Int, 404)
    }

    func testGroupsPrefixAndNesting() {
        let router = Router()
        let api = router.group("api/v1")
        api.get("ping") { _, _ in "pong" }
        api.group("notes").get(":id") { _, c in "note \(c.parameters.get("id") ?? "")" }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/api/v1/ping").text, "pong")
        XCTAssertEqual(client.send("GET", "/api/v1/notes/9").text, "note 9")
        XCTAssertEqual(client.send("GET", "/ping").status, 404)
        XCTAssertEqual(router.routeDescriptions, ["GET /api/v1/ping", "GET /api/v1/notes/:id"])
    }

    func testLaterRegistrationReplacesSameMethodAndPath() {
        let router = Router()
        router.get("x") { _, _ in "first" }
        router.get("x") { _, _ in "second" }
        XCTAssertEqual(TestClient(router).send("GET", "/x").text, "second")
    }

    func testTypedStatusAndMethodNames() {
        XCTAssertEqual(HTTPStatus.notFound.code, 404)
        XCTAssertEqual(HTTPStatus.notFound.description, "404 Not Found")
        XCTAssertEqual(HTTPMethod.post.rawValue, "POST")
        XCTAssertEqual(HTTPRequest(method: "DELETE", target: "/").httpMethod, .delete)
        XCTAssertEqual(HTTPResponse(status: .created).status, 201)
    }

    func testMayBlockIsPerRoute() {
        let router = Router()
        router.get("health", mayBlock: false) { _, _ in "ok" }
        XCTAssertFalse(router.handler().mayBlock)
        router.get("db") { _, _ in "rows" }
        XCTAssertTrue(router.handler().mayBlock)
    }
}

/// Per-route mayBlock reaches the worker through the context's gate: only blocking routes open it.
final class BlockingGateTests: XCTestCase {
    func testOnlyBlockingRoutesOpenTheGate() {
        let router = Router()
        router.get("health", mayBlock: false) { _, _ in "ok" }
        router.get("db") { _, _ in "rows" }
        let handler = router.handler()
        let gate = BlockingGate()
        let started = Mutex<[Int32]>([])
        gate.start = { fd in started.withLock { $0.append(fd) } }
        var context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
        context.blockingGate = gate
        for (path, opens) in [("/health", false), ("/db", true), ("/missing", false)] {
            gate.arm(fd: 7)
            _ = handler.handle(HTTPRequest(target: path), context: context)
            XCTAssertEqual(gate.opened, opens, path)
        }
        XCTAssertEqual(started.withLock { $0 }, [7])
        gate.arm(fd: -1)  // draining: noted, nothing started
        _ = handler.handle(HTTPRequest(target: "/db"), context: context)
        XCTAssertTrue(gate.opened)
        XCTAssertEqual(started.withLock { $0 }, [7])
    }
}
