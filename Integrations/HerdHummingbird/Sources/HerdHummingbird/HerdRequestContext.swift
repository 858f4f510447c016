import Herd
public import Hummingbird
public import Logging

/// What herdd hands a request context: the worker's view of the request (listener, worker,
/// pid, peer) and a logger with the request's id.
public struct HerdRequestContextSource: RequestContextSource {
    /// herdd's own context of the request.
    public let herd: HandlerContext
    public let logger: Logger

    public init(herd: HandlerContext, logger: Logger) {
        self.herd = herd
        self.logger = logger
    }
}

/// A Hummingbird request context for routers served by herdd: `context.herd` is herdd's
/// `HandlerContext` (listener name, worker slot, pid, peer address), `context.logger` logs
/// through herdd's logging (journal or stderr) with `hb.request.id`.
///
/// A context of your own (for hummingbird-auth, say) gets the same by declaring
/// `typealias Source = HerdRequestContextSource`. Contexts whose source is Hummingbird's
/// `ApplicationRequestContextSource` (`BasicRequestContext`, and every context that does not
/// name a source) work too; they read herdd's context from ``HerdHummingbird/handlerContext``.
public struct HerdRequestContext: Hummingbird.RequestContext {
    public typealias Source = HerdRequestContextSource
    public var coreContext: CoreRequestContextStorage
    /// herdd's context of the request.
    public let herd: HandlerContext

    public init(source: HerdRequestContextSource) {
        self.coreContext = .init(source: source)
        self.herd = source.herd
    }
}
