import Handlers

/// An async route closure after its output was turned into a response.
public typealias AsyncResponder = @Sendable (HTTPRequest, RequestContext) async throws -> HTTPResponse

// The async twins of RouterMethods' functions, with the same names as Hummingbird's: the
// closure's async-ness picks the overload. A closure that awaits can only be async; one that
// does not is synchronous, and Swift ranks the synchronous overload first for it (no sync-to-
// async function conversion), so existing routes stay synchronous (RouterAsyncTests checks
// both). Async routes have no `mayBlock`: they never block their worker.
extension RouterMethods {
    /// Registers an async route whose closure returns a ``ResponseGenerator``.
    @discardableResult
    public func on<Output: ResponseGenerator>(_ path: String, method: HTTPMethod,
                                              use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        addAsyncRoute(path, method: method) { request, context in
            try await closure(request, context).response(from: request, context: context)
        }
    }

    /// Registers an async route whose closure returns any `Encodable` value, sent as JSON.
    @_disfavoredOverload
    @discardableResult
    public func on<Output: Encodable & SendableMetatype>(_ path: String, method: HTTPMethod,
                                      use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        addAsyncRoute(path, method: method) { request, context in
            try await JSONBody.response(closure(request, context))
        }
    }

    /// Registers an async route whose request body streams in when `streamsBody`: the route
    /// starts at the end of the head and reads `context.requestBody` as it arrives
    /// (docs/async.md, "Streamed request bodies").
    @discardableResult
    public func on<Output: ResponseGenerator>(_ path: String, method: HTTPMethod, streamsBody: Bool,
                                              use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        addAsyncRoute(path, method: method, streamsBody: streamsBody) { request, context in
            try await closure(request, context).response(from: request, context: context)
        }
    }

    /// The same, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func on<Output: Encodable & SendableMetatype>(_ path: String, method: HTTPMethod, streamsBody: Bool,
                                      use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        addAsyncRoute(path, method: method, streamsBody: streamsBody) { request, context in
            try await JSONBody.response(closure(request, context))
        }
    }

    /// GET (and HEAD) `path`, async.
    @discardableResult
    public func get<Output: ResponseGenerator>(_ path: String = "",
                                               use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .get, use: closure)
    }

    /// GET (and HEAD) `path`, async, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func get<Output: Encodable & SendableMetatype>(_ path: String = "",
                                       use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .get, use: closure)
    }

    /// POST `path`, async.
    @discardableResult
    public func post<Output: ResponseGenerator>(_ path: String = "",
                                                use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .post, use: closure)
    }

    /// POST `path`, async, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func post<Output: Encodable & SendableMetatype>(_ path: String = "",
                                        use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .post, use: closure)
    }

    /// PUT `path`, async.
    @discardableResult
    public func put<Output: ResponseGenerator>(_ path: String = "",
                                               use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .put, use: closure)
    }

    /// PUT `path`, async, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func put<Output: Encodable & SendableMetatype>(_ path: String = "",
                                       use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .put, use: closure)
    }

    /// PATCH `path`, async.
    @discardableResult
    public func patch<Output: ResponseGenerator>(_ path: String = "",
                                                 use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .patch, use: closure)
    }

    /// PATCH `path`, async, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func patch<Output: Encodable & SendableMetatype>(_ path: String = "",
                                         use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .patch, use: closure)
    }

    /// DELETE `path`, async.
    @discardableResult
    public func delete<Output: ResponseGenerator>(_ path: String = "",
                                                  use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .delete, use: closure)
    }

    /// DELETE `path`, async, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func delete<Output: Encodable & SendableMetatype>(_ path: String = "",
                                          use closure: @escaping @Sendable (HTTPRequest, RequestContext) async throws -> Output) -> Self {
        on(path, method: .delete, use: closure)
    }
}
