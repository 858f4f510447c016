// The example's app: one buildRouter() that runs unchanged on Hummingbird's Application and on
// herdd (Sources/hb-example/main.swift picks). Its routes exercise what the bridge must carry:
// JSON both ways, a request body, a streamed response, middleware (CORS, request logs, files,
// hummingbird-auth) and errors.
import Foundation
public import Hummingbird
public import HummingbirdAuth
import HerdHummingbird
import HTTPTypes

/// Who a bearer token authenticates.
public struct User: Sendable, Codable, ResponseEncodable {
    public var name: String

    public init(name: String) { self.name = name }
}

/// The app's request context: hummingbird-auth's, built from Hummingbird's own source, so the
/// same router runs on both servers.
public typealias AppRequestContext = BasicAuthRequestContext<User>

/// Authenticates `Authorization: Bearer <token>` against a fixed table (an example: a real app
/// asks its user store).
public struct TokenAuthenticator: AuthenticatorMiddleware {
    public typealias Context = AppRequestContext
    let tokens: [String: User]

    public init(tokens: [String: User]) { self.tokens = tokens }

    public func authenticate(request: Request, context: Context) async throws -> User? {
        guard let bearer = request.headers.bearer else { return nil }
        return tokens[bearer.token]
    }
}

/// A TODO as the JSON routes send and take it.
public struct Todo: Sendable, Codable, ResponseEncodable {
    public var id: Int
    public var title: String
    public var done: Bool
}

/// The app. `publicDirectory` is what FileMiddleware serves (before the routes).
public func buildRouter(publicDirectory: String) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.addMiddleware {
        LogRequestsMiddleware(.info)
        CORSMiddleware(allowOrigin: .originBased, allowHeaders: [.contentType, .authorization],
                       allowMethods: [.get, .post, .options])
        FileMiddleware(publicDirectory)
    }
    router.get("/") { _, _ in "hello from hummingbird\n" }
    router.get("/todos/:id") { _, context -> Todo in
        let id = try context.parameters.require("id", as: Int.self)
        guard (1...100).contains(id) else { throw HTTPError(.notFound, message: "no todo \(id)") }
        return Todo(id: id, title: "todo \(id)", done: id % 2 == 0)
    }
    router.post("/todos") { request, context -> EditedResponse<Todo> in
        var todo = try await request.decode(as: Todo.self, context: context)
        todo.id = 101
        return EditedResponse(status: .created, response: todo)
    }
    // The request body, streamed as the handler reads it, echoed with its size.
    router.post("/echo") { request, _ -> Response in
        var total = 0
        var body = ByteBuffer()
        for try await chunk in request.body {
            total += chunk.readableBytes
            var chunk = chunk
            body.writeBuffer(&chunk)
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream", .bodyBytes: "\(total)"],
                        body: .init(byteBuffer: body))
    }
    // An upload read as it arrives: its size, its chunks, and when the first one came (wall
    // clock, epoch seconds): under herdd the body streams in (docs/hummingbird.md).
    router.post("/upload") { request, _ -> UploadReport in
        var report = UploadReport(bytes: 0, chunks: 0, firstChunkAt: 0)
        for try await chunk in request.body {
            if report.chunks == 0 { report.firstChunkAt = Date().timeIntervalSince1970 }
            report.chunks += 1
            report.bytes += chunk.readableBytes
        }
        return report
    }
    // An upload collected whole, up to 100 kB (more: 413, from collect(upTo:)).
    router.post("/upload-collect") { request, context -> String in
        let body = try await request.body.collect(upTo: 100_000)
        return "\(body.readableBytes)\n"
    }
    // A body written in parts by an async writer, with awaits between them.
    router.get("/stream/:parts") { _, context -> Response in
        let parts = try context.parameters.require("parts", as: Int.self)
        guard (0...1000).contains(parts) else { throw HTTPError(.badRequest) }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init { writer in
            for part in 0..<parts {
                try await Task.sleep(for: .milliseconds(1))
                try await writer.write(ByteBuffer(string: "part \(part)\n"))
            }
            try await writer.finish(nil)
        })
    }
    // Which server answered: herdd's worker and peer, or Hummingbird's own.
    router.get("/server") { _, _ -> String in
        guard let herd = HerdHummingbird.handlerContext else { return "hummingbird\n" }
        return "herdd worker=\(herd.workerID) pid=\(herd.pid) listener=\(herd.listenerName) peer=\(herd.peer)\n"
    }
    router.get("/fail") { _, _ -> String in throw ExampleFailure() }
    router.group("/secure")
        .add(middleware: TokenAuthenticator(tokens: ["letmein": User(name: "ada")]))
        .add(middleware: IsAuthenticatedMiddleware())
        .get("/me") { _, context -> User in try context.requireIdentity() }
    return router
}

/// What /upload saw of a request body.
public struct UploadReport: ResponseCodable {
    public var bytes: Int
    public var chunks: Int
    public var firstChunkAt: Double
}

extension HTTPField.Name {
    /// The size of the body /echo read (a literal name: always a valid token).
    static let bodyBytes = HTTPField.Name("X-Body-Bytes") ?? .contentLength
}

/// An error that is no HTTPResponseError: both servers answer 500.
struct ExampleFailure: Error {}
