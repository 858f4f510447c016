import Herd
import Synchronization
import XCTest

struct Secret: Error { let password = "hunter2" }

/// A middleware that records its name before and after `next`.
struct Tracing: RouterMiddleware {
    let name: String
    let trace: Mutex<[String]>.Shared

    func handle(_ request: HTTPRequest, context: RequestContext,
                next: (HTTPRequest, RequestContext) throws -> HTTPResponse) throws -> HTTPResponse {
        trace.append("\(name)>")
        defer { trace.append("<\(name)") }
        return try next(request, context)
    }
}

extension Mutex where Value == [String] {
    /// A reference to one trace, shared by the middlewares of a test.
    final class Shared: Sendable {
        let m = Mutex<[String]>([])
        func append(_ s: String) { m.withLock { $0.append(s) } }
        func take() -> [String] { m.withLock { let v = $0; $0 = []; return v } }
    }
}

/// Thrown errors become responses; middleware order around routes and groups.
final class ErrorAndMiddlewareTests: XCTestCase {
    func testHTTPErrorBecomesItsResponseJSONOrText() {
        let router = Router()
        router.get("teapot") { _, _ -> String in throw HTTPError(.init(code: 418), headers: ["X-Why": "tea"], message: "short and stout") }
        let client = TestClient(router)
        let json = client.send("GET", "/teapot")
        XCTAssertEqual(json.status, 418)
        XCTAssertEqual(json.headers["X-Why"], "tea")
        XCTAssertEqual(json.headers["Content-Type"], "application/json")
        XCTAssertEqual(json.json?["error"] as? String, "short and stout")
        let text = client.send("GET", "/teapot", headers: ["Accept": "text/html"])
        XCTAssertEqual(text.headers["Content-Type"], "text/plain; charset=utf-8")
        XCTAssertEqual(text.text, "short and stout\n")
        XCTAssertEqual(client.send("GET", "/teapot", headers: ["Accept": "text/html, application/json;q=0.9"]).json?["status"] as? Int, 418)
    }

    func testOtherErrorsAre500AndLeakNothing() {
        let router = Router()
        router.get("boom") { _, _ -> String in throw Secret() }
        let r = TestClient(router).send("GET", "/boom", headers: ["X-Request-ID": "req-1"])
        XCTAssertEqual(r.status, 500)
        XCTAssertFalse(r.text.contains("hunter2"))
        XCTAssertFalse(r.text.contains("Secret"))
        XCTAssertEqual(r.json?["error"] as? String, "internal server error (request id req-1)")
    }

    func testMiddlewareOrderRouterThenGroupThenRoute() {
        let trace = Mutex<[String]>.Shared()
        let router = Router()
        router.add(middleware: Tracing(name: "A", trace: trace))
        router.add(middleware: Tracing(name: "B", trace: trace))
        let group = router.group("g").add(middleware: Tracing(name: "G1", trace: trace)).add(middleware: Tracing(name: "G2", trace: trace))
        group.get("x") { _, _ in trace.append("route"); return "x" }
        router.get("plain") { _, _ in trace.append("plain"); return "p" }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/g/x").text, "x")
        XCTAssertEqual(trace.take(), ["A>", "B>", "G1>", "G2>", "route", "<G2", "<G1", "<B", "<A"])
        XCTAssertEqual(client.send("GET", "/plain").text, "p")
        XCTAssertEqual(trace.take(), ["A>", "B>", "plain", "<B", "<A"])
        // Router middleware also sees requests no route answers.
        XCTAssertEqual(client.send("GET", "/none").status, 404)
        XCTAssertEqual(trace.take(), ["A>", "B>", "<B", "<A"])
    }

    func testMiddlewareCanAnswerAndChangeRequests() {
        let router = Router()
        router.add { request, context, next in
            guard request.headers["Authorization"] == "Bearer ok" else { throw HTTPError(.unauthorized) }
            var context = context
            context.values["user"] = "ann"
            return try next(request, context)
        }
        router.add(middleware: RequestIDMiddleware())
        router.get("me") { _, context in context.values["user"] as? String ?? "?" }
        let client = TestClient(router)
        XCTAssertEqual(client.send("GET", "/me").status, 401)
        let ok = client.send("GET", "/me", headers: ["Authorization": "Bearer ok", "X-Request-ID": "abc"])
        XCTAssertEqual(ok.text, "ann")
        XCTAssertEqual(ok.headers["X-Request-ID"], "abc")
        let generated = client.send("GET", "/me", headers: ["Authorization": "Bearer ok"]).headers["X-Request-ID"] ?? ""
        XCTAssertTrue(generated.count > 9 && generated.contains("-"), generated)
    }

    func testCORSPreflightAndHeaders() {
        let router = Router()
        router.add(middleware: CORSMiddleware(allowOrigin: .originBased, maxAge: 600))
        router.get("x") { _, _ in "x" }
        let client = TestClient(router)
        let preflight = client.send("OPTIONS", "/x", headers: ["Origin": "https://a.example", "Access-Control-Request-Method": "GET"])
        XCTAssertEqual(preflight.status, 204)
        XCTAssertEqual(preflight.headers["Access-Control-Allow-Origin"], "https://a.example")
        XCTAssertEqual(preflight.headers["Access-Control-Max-Age"], "600")
        XCTAssertEqual(client.send("GET", "/x", headers: ["Origin": "https://a.example"]).headers["Vary"], "Origin")
        XCTAssertNil(client.send("GET", "/x").headers["Access-Control-Allow-Origin"])
    }
}
