import Herd
public import Hummingbird

/// Hummingbird's router, served by herdd's master and prefork workers. See docs/hummingbird.md.
///
/// ```swift
/// import Hummingbird
/// import HerdHummingbird
///
/// HerdHummingbird.main(name: "app") { buildRouter() }   // instead of Application(...).runService()
/// ```
/// then `app --listen 127.0.0.1:8080 --default-handler app --workers 4` (every herdd option,
/// `--config FILE`, socket activation, upgrades, metrics).
public enum HerdHummingbird {
    /// herdd's context of the request being answered (nil outside a request served by herdd):
    /// the listener, worker and peer, whatever the request context type of the router.
    @TaskLocal public static var handlerContext: HandlerContext?

    /// Registers the router `buildRouter` builds as herdd handler `name`, then runs herdd (the
    /// master with its command line, or a worker). Never returns.
    ///
    /// Call it at top level, unconditionally, and build nothing before it: the master starts
    /// the workers as this same executable. Each worker calls `buildRouter` once, on its first
    /// request; the master never does (it must start no thread before it blocks its signals:
    /// see ``ResponderSlot``).
    public static func main<Builder: HTTPResponderBuilder>(name: String = "app", buildRouter: @escaping @Sendable () -> Builder) -> Never
    where Builder.Responder.Context: Hummingbird.RequestContext, Builder.Responder.Context.Source == HerdRequestContextSource {
        HerdServer.main(handlers: [name: { _ in HummingbirdHandler { buildRouter().buildResponder() } }])
    }

    /// The same, for routers whose context is built from Hummingbird's own source
    /// (`BasicRequestContext` and contexts that name no source): the one router of an app that
    /// also runs on Hummingbird's `Application`.
    public static func main<Builder: HTTPResponderBuilder>(name: String = "app", buildRouter: @escaping @Sendable () -> Builder) -> Never
    where Builder.Responder.Context: Hummingbird.RequestContext, Builder.Responder.Context.Source == ApplicationRequestContextSource {
        HerdServer.main(handlers: [name: { _ in HummingbirdHandler { buildRouter().buildResponder() } }])
    }
}
