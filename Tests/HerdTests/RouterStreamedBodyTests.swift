@testable import Herd
import XCTest

/// Routes whose request body streams in (`streamsBody: true`): the router says so per route,
/// only for such routes, and the route reads `context.requestBody`.
final class RouterStreamedBodyTests: XCTestCase {
    private func router() -> Router {
        let router = Router()
        router.on("upload/:name", method: .post, streamsBody: true) { _, context async throws -> String in
            let name = try context.parameters.require("name")
            guard let body = context.requestBody else { return "\(name): no stream\n" }
            var chunks = 0, bytes = 0
            for try await chunk in body { chunks += 1; bytes += chunk.count }
            return "\(name): \(bytes) bytes in \(chunks) chunks\n"
        }
        router.post("gathered") { request, _ async throws -> String in "\(request.body.count) bytes\n" }
        router.group("api").on("upload", method: .put, streamsBody: true) { _, _ async throws -> String in "ok\n" }
        return router
    }

    func testOnlyStreamingRoutesStreamTheirBody() {
        let handler = router().handler()
        XCTAssertTrue(handler.streamsBody(of: HTTPRequest(method: "POST", target: "/upload/a")))
        XCTAssertTrue(handler.streamsBody(of: HTTPRequest(method: "PUT", target: "/api/upload")))
        XCTAssertFalse(handler.streamsBody(of: HTTPRequest(method: "POST", target: "/gathered")))
        XCTAssertFalse(handler.streamsBody(of: HTTPRequest(method: "GET", target: "/upload/a"))) // 405
        XCTAssertFalse(handler.streamsBody(of: HTTPRequest(method: "POST", target: "/nowhere")))
        // A router without such routes answers at once, without matching.
        let plain = Router()
        plain.post("x") { _, _ async throws -> String in "" }
        XCTAssertFalse(plain.handler().streamsBody(of: HTTPRequest(method: "POST", target: "/x")))
    }

    func testTheRouteReadsTheStream() async throws {
        let handler = router().handler()
        var context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
        context.requestBody = RequestBodyStream(Array(repeating: 7, count: 1234))
        let response = try await handler.respond(to: HTTPRequest(method: "POST", target: "/upload/f"), context: context).awaitResponse()
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.text, "f: 1234 bytes in 1 chunks\n")
    }
}
