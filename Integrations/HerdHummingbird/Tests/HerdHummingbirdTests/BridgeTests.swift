// The bridge driven directly: herdd requests in, through HummingbirdHandler and a real
// Hummingbird router (the example's, with its middleware), herdd responses out.
import Foundation
import HBExampleApp
import Herd
@testable import HerdHummingbird
import Hummingbird
import HummingbirdAuth
import HTTPTypes
import Testing

let herdContext = HandlerContext(listenerName: "http", workerID: 3, pid: 4242, peer: "127.0.0.1:5555")

func exampleHandler(publicDirectory: String = "/nonexistent") -> HummingbirdHandler<RouterResponder<AppRequestContext>> {
    HummingbirdHandler { buildRouter(publicDirectory: publicDirectory).buildResponder() }
}

func send<R>(_ handler: HummingbirdHandler<R>, _ target: String, method: String = "GET",
             headers: Herd.HTTPHeaders = ["Host": "example.test"], body: String = "") async throws -> Herd.HTTPResponse {
    // As herdd's worker does: one `respond` per request, whose async work is then awaited.
    let outcome = handler.respond(to: Herd.HTTPRequest(method: method, target: target, headers: headers, body: Array(body.utf8)),
                                  context: herdContext)
    #expect(outcome.isAsync, "every request of a Hummingbird responder is async")
    return try await outcome.awaitResponse()
}

func bodyText(_ response: Herd.HTTPResponse) -> String {
    guard case .bytes(let bytes) = response.body else { return "<not bytes>" }
    return String(decoding: bytes, as: UTF8.self)
}

@Suite struct BridgeTests {
    @Test func textRoute() async throws {
        let response = try await send(exampleHandler(), "/")
        #expect(response.status == 200)
        #expect(bodyText(response) == "hello from hummingbird\n")
        #expect(response.headers["Content-Type"]?.hasPrefix("text/plain") == true)
        // Framing is herdd's: Hummingbird's Content-Length does not reach herdd's headers.
        #expect(response.headers["Content-Length"] == nil)
    }

    @Test func jsonRouteWithParameter() async throws {
        let response = try await send(exampleHandler(), "/todos/4?verbose=1")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "application/json; charset=utf-8")
        let todo = try JSONDecoder().decode(Todo.self, from: Data(bodyText(response).utf8))
        #expect(todo.id == 4 && todo.title == "todo 4" && todo.done)
    }

    @Test func jsonRequestBodyDecoded() async throws {
        let response = try await send(exampleHandler(), "/todos", method: "POST",
                                      headers: ["Host": "x", "Content-Type": "application/json"],
                                      body: #"{"id":0,"title":"write docs","done":false}"#)
        #expect(response.status == 201)
        let todo = try JSONDecoder().decode(Todo.self, from: Data(bodyText(response).utf8))
        #expect(todo.id == 101 && todo.title == "write docs")
    }

    @Test func requestBodyEchoed() async throws {
        let payload = String(repeating: "abc", count: 50_000)
        let response = try await send(exampleHandler(), "/echo", method: "POST", body: payload)
        #expect(response.status == 200)
        #expect(response.headers["X-Body-Bytes"] == "150000")
        #expect(bodyText(response) == payload)
    }

    /// A body that streams in (herdd's `context.requestBody`) is the route's `request.body`:
    /// iterated by /echo, collected by /upload-collect (413 past its limit). Streaming is the
    /// default and can be turned off.
    @Test func streamedRequestBodyReachesTheRoute() async throws {
        let handler = exampleHandler()
        let head = Herd.HTTPRequest(method: "POST", target: "/echo", headers: ["Host": "example.test"])
        #expect(handler.streamsBody(of: head))
        var gathered = handler
        gathered.streamsRequestBodies = false
        #expect(!gathered.streamsBody(of: head))
        func post(_ path: String, _ bytes: [UInt8]) async throws -> Herd.HTTPResponse {
            var context = herdContext
            context.requestBody = RequestBodyStream(bytes)
            let request = Herd.HTTPRequest(method: "POST", target: path, headers: ["Host": "example.test"]) // body: empty, as herdd leaves it
            return try await handler.respond(to: request, context: context).awaitResponse()
        }
        let payload = Array(String(repeating: "xyz", count: 20_000).utf8)
        let echoed = try await post("/echo", payload)
        #expect(echoed.status == 200 && echoed.headers["X-Body-Bytes"] == "60000")
        #expect(bodyText(echoed).utf8.elementsEqual(payload))
        #expect(try await post("/upload-collect", payload).status == 200)
        #expect(try await post("/upload-collect", payload + payload).status == 413)
    }

    /// A body of unknown length (a writer closure that awaits between writes) streams: herdd
    /// gets a produced body and sends each write as it comes.
    @Test func streamedBodyStreams() async throws {
        let response = try await send(exampleHandler(), "/stream/3")
        #expect(response.status == 200)
        guard case .stream(let stream) = response.body, let produced = stream as? any ProducedBodyStream else {
            Issue.record("expected a produced (streamed) body, got \(response.body)")
            return
        }
        let bytes = try await produced.collect(upTo: 1 << 20)
        #expect(String(decoding: bytes, as: UTF8.self) == "part 0\npart 1\npart 2\n")
    }

    @Test func notFoundAndHTTPError() async throws {
        #expect(try await send(exampleHandler(), "/nowhere").status == 404)
        #expect(try await send(exampleHandler(), "/todos/500").status == 404)
        #expect(try await send(exampleHandler(), "/todos/abc").status == 400)
    }

    @Test func unrecognisedErrorIs500() async throws {
        let response = try await send(exampleHandler(), "/fail")
        #expect(response.status == 500)
        #expect(bodyText(response) == "")
    }

    @Test func corsHeaders() async throws {
        let simple = try await send(exampleHandler(), "/", headers: ["Host": "x", "Origin": "https://app.example"])
        #expect(simple.headers["Access-Control-Allow-Origin"] == "https://app.example")
        let preflight = try await send(exampleHandler(), "/todos", method: "OPTIONS", headers: [
            "Host": "x", "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        ])
        #expect(preflight.status == 204)
        #expect(preflight.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS")
        #expect(preflight.headers["Access-Control-Allow-Headers"] == "content-type, authorization")
    }

    @Test func bearerAuthentication() async throws {
        #expect(try await send(exampleHandler(), "/secure/me").status == 401)
        let wrong = try await send(exampleHandler(), "/secure/me", headers: ["Host": "x", "Authorization": "Bearer nope"])
        #expect(wrong.status == 401)
        let right = try await send(exampleHandler(), "/secure/me", headers: ["Host": "x", "Authorization": "Bearer letmein"])
        #expect(right.status == 200)
        #expect(try JSONDecoder().decode(User.self, from: Data(bodyText(right).utf8)).name == "ada")
    }

    @Test func fileMiddlewareServesFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hb-bridge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("static file\n".utf8).write(to: directory.appendingPathComponent("hello.txt"))
        let response = try await send(exampleHandler(publicDirectory: directory.path), "/hello.txt")
        #expect(response.status == 200)
        #expect(bodyText(response) == "static file\n")
        #expect(response.headers["Content-Type"]?.hasPrefix("text/plain") == true)
    }

    @Test func herdContextReachesRoutes() async throws {
        let response = try await send(exampleHandler(), "/server")
        #expect(bodyText(response) == "herdd worker=3 pid=4242 listener=http peer=127.0.0.1:5555\n")
        #expect(HerdHummingbird.handlerContext == nil)  // only while a request is answered
    }

    @Test func herdRequestContext() async throws {
        let router = Router(context: HerdRequestContext.self)
        router.get("/who") { _, context -> String in
            "\(context.herd.listenerName) \(context.herd.workerID) \(context.herd.peer) \(context.id.isEmpty ? "no-id" : "id")"
        }
        let responder = router.buildResponder()
        let response = try await send(HummingbirdHandler { responder }, "/who")
        #expect(bodyText(response) == "http 3 127.0.0.1:5555 id")
    }

    /// docs/hummingbird.md's own auth context on herdd's source: identity and herdd's context.
    struct AppContext: AuthRequestContext, Hummingbird.RequestContext {
        typealias Source = HerdRequestContextSource
        var coreContext: CoreRequestContextStorage
        var identity: User?
        let herd: HandlerContext
        init(source: Source) { coreContext = .init(source: source); herd = source.herd }
    }

    @Test func authContextOnHerdSource() async throws {
        let router = Router(context: AppContext.self)
        router.add(middleware: TokenAuthenticatorOnHerd())
        router.add(middleware: IsAuthenticatedMiddleware())
        router.get("/me") { _, context -> String in "\(try context.requireIdentity().name) on worker \(context.herd.workerID)" }
        let responder = router.buildResponder()
        let handler = HummingbirdHandler { responder }
        #expect(try await send(handler, "/me").status == 401)
        let ok = try await send(handler, "/me", headers: ["Host": "x", "Authorization": "Bearer t"])
        #expect(ok.status == 200 && bodyText(ok) == "ada on worker 3")
    }

    struct TokenAuthenticatorOnHerd: AuthenticatorMiddleware {
        typealias Context = AppContext
        func authenticate(request: Request, context: Context) async throws -> User? {
            request.headers.bearer?.token == "t" ? User(name: "ada") : nil
        }
    }

    @Test func requestHeadAsHummingbirdBuildsIt() async throws {
        let request = try #require(Conversion.request(Herd.HTTPRequest(
            method: "PUT", target: "/a/b?c=d", headers: ["Host": "h.test:80", "X-One": "1", "host": "second"])))
        #expect(request.method == .put)
        #expect(request.head.authority == "h.test:80")
        #expect(request.head.scheme == "http")
        #expect(request.uri.path == "/a/b" && request.uri.query == "c=d")
        #expect(request.headers[try #require(HTTPField.Name("X-One"))] == "1")
        #expect(request.headers[try #require(HTTPField.Name("Host"))] == "second")  // only the first Host becomes the authority
        #expect(Conversion.request(Herd.HTTPRequest(method: "GE T", target: "/")) == nil)
    }

    @Test func absoluteFormTarget() {
        #expect(Conversion.originFormTarget("/x?y") == "/x?y")
        #expect(Conversion.originFormTarget("http://h.test/x?y") == "/x?y")
        #expect(Conversion.originFormTarget("http://h.test?y") == "/?y")
        #expect(Conversion.originFormTarget("http://h.test") == "/")
    }
}
