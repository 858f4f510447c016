import Handlers

/// `get`, `post`, `put`, `patch`, `delete`, `head` and `on` for ``Router`` and ``RouterGroup``.
///
/// A closure returns a ``ResponseGenerator`` (`HTTPResponse`, `String`, `HTTPStatus`,
/// ``EditedResponse``, a ``ResponseEncodable`` type) or any other `Encodable` value, which is
/// sent as JSON with status 200.
public protocol RouterMethods {
    /// Registers `respond` for `method` on `path`.
    @discardableResult
    func addRoute(_ path: String, method: HTTPMethod, mayBlock: Bool, responder: @escaping SyncResponder) -> Self

    /// Registers the `async` `respond` for `method` on `path` (RouterMethods+Async.swift).
    @discardableResult
    func addAsyncRoute(_ path: String, method: HTTPMethod, responder: @escaping AsyncResponder) -> Self

    /// Registers the `async` `respond`, whose request body streams in when `streamsBody`
    /// (`context.requestBody`; docs/async.md, "Streamed request bodies").
    @discardableResult
    func addAsyncRoute(_ path: String, method: HTTPMethod, streamsBody: Bool, responder: @escaping AsyncResponder) -> Self
}

/// A synchronous route closure after its output was turned into a response.
public typealias SyncResponder = @Sendable (HTTPRequest, RequestContext) throws -> HTTPResponse

extension RouterMethods {
    /// Registers a route whose closure returns a ``ResponseGenerator``.
    @discardableResult
    public func on<Output: ResponseGenerator>(_ path: String, method: HTTPMethod, mayBlock: Bool = true,
                                              use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        addRoute(path, method: method, mayBlock: mayBlock) { request, context in
            try closure(request, context).response(from: request, context: context)
        }
    }

    /// Registers a route whose closure returns any `Encodable` value, sent as JSON.
    @_disfavoredOverload
    @discardableResult
    public func on<Output: Encodable & SendableMetatype>(_ path: String, method: HTTPMethod, mayBlock: Bool = true,
                                      use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        addRoute(path, method: method, mayBlock: mayBlock) { request, context in
            try JSONBody.response(closure(request, context))
        }
    }

    /// GET (and HEAD) `path`.
    @discardableResult
    public func get<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                               use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .get, mayBlock: mayBlock, use: closure)
    }

    /// GET (and HEAD) `path`, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func get<Output: Encodable & SendableMetatype>(_ path: String = "", mayBlock: Bool = true,
                                       use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .get, mayBlock: mayBlock, use: closure)
    }

    /// POST `path`.
    @discardableResult
    public func post<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                                use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .post, mayBlock: mayBlock, use: closure)
    }

    /// POST `path`, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func post<Output: Encodable & SendableMetatype>(_ path: String = "", mayBlock: Bool = true,
                                        use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .post, mayBlock: mayBlock, use: closure)
    }

    /// PUT `path`.
    @discardableResult
    public func put<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                               use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .put, mayBlock: mayBlock, use: closure)
    }

    /// PUT `path`, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func put<Output: Encodable & SendableMetatype>(_ path: String = "", mayBlock: Bool = true,
                                       use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .put, mayBlock: mayBlock, use: closure)
    }

    /// PATCH `path`.
    @discardableResult
    public func patch<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                                 use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .patch, mayBlock: mayBlock, use: closure)
    }

    /// PATCH `path`, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func patch<Output: Encodable & SendableMetatype>(_ path: String = "", mayBlock: Bool = true,
                                         use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .patch, mayBlock: mayBlock, use: closure)
    }

    /// DELETE `path`.
    @discardableResult
    public func delete<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                                  use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .delete, mayBlock: mayBlock, use: closure)
    }

    /// DELETE `path`, answered with JSON.
    @_disfavoredOverload
    @discardableResult
    public func delete<Output: Encodable & SendableMetatype>(_ path: String = "", mayBlock: Bool = true,
                                          use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .delete, mayBlock: mayBlock, use: closure)
    }

    /// HEAD `path` (GET routes answer HEAD already; this overrides one).
    @discardableResult
    public func head<Output: ResponseGenerator>(_ path: String = "", mayBlock: Bool = true,
                                                use closure: @escaping @Sendable (HTTPRequest, RequestContext) throws -> Output) -> Self {
        on(path, method: .head, mayBlock: mayBlock, use: closure)
    }
}
