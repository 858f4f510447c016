import Herd
public import Hummingbird
public import Logging
import NIOConcurrencyHelpers
import NIOEmbedded

/// A herdd async handler that answers every request with a Hummingbird 2 responder (a
/// `Router`'s, with its middleware): each request runs as a task on the worker's event loop,
/// like herdd's own async handlers (docs/async.md), so a worker keeps many in flight.
///
/// What Hummingbird's `Application` does around its responder, this does around herdd's
/// request: a logger with a fresh `hb.request.id`, the request context, an error that escapes
/// the responder answered 500 with an empty body (logged at debug, as Hummingbird does).
/// herdd's context is also in the task-local ``HerdHummingbird/handlerContext`` while the
/// responder runs, for contexts that cannot carry it.
public struct HummingbirdHandler<Responder: HTTPResponder>: AsyncHandler where Responder.Context: Hummingbird.RequestContext {
    let responder: ResponderSlot<Responder>
    let logger: Logger
    let makeContext: @Sendable (HandlerContext, Logger) -> Responder.Context
    /// Whether request bodies stream in (default): the route starts at the end of the head and
    /// `request.body` yields buffers as herdd reads them, with back-pressure. False: herdd reads
    /// each body whole (up to --max-body) first and `request.body` is one buffer.
    public var streamsRequestBodies = true

    /// A handler whose contexts `makeContext` builds from herdd's context and the request's
    /// logger (the initializers below cover Hummingbird's two kinds of context source).
    /// `responder` is built on the first request (see ``ResponderSlot``).
    public init(logger: Logger, responder: @escaping @Sendable () -> Responder,
                makeContext: @escaping @Sendable (HandlerContext, Logger) -> Responder.Context) {
        self.responder = ResponderSlot(responder)
        self.logger = logger
        self.makeContext = makeContext
    }

    /// Every request is answered by the responder, awaited: the worker runs ``handle(_:context:)``
    /// as a task.
    public func respond(to request: Herd.HTTPRequest, context: HandlerContext) -> HandlerOutcome {
        .async { try await self.handle(request, context: context) }
    }

    /// herdd asks at the end of a head with a body: stream it unless told otherwise.
    public func streamsBody(of head: Herd.HTTPRequest) -> Bool { streamsRequestBodies }

    /// The response of the Hummingbird responder to `request` (its body from
    /// `context.requestBody` when it streams in).
    public func handle(_ request: Herd.HTTPRequest, context: HandlerContext) async throws -> Herd.HTTPResponse {
        guard let hbRequest = Conversion.request(request, streamed: context.requestBody) else { return .errorResponse(status: 400) }
        var logger = self.logger
        logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
        let hbContext = makeContext(context, logger)
        let responder = self.responder.get()
        let response: Hummingbird.Response
        do {
            response = try await HerdHummingbird.$handlerContext.withValue(context) {
                try await responder.respond(to: hbRequest, context: hbContext)
            }
        } catch {
            // As Hummingbird's Application: an error that is no HTTPResponseError is a 500.
            logger.debug("Unrecognised Error", metadata: ["error.type": "\(error)"])
            return Herd.HTTPResponse(status: 500)
        }
        return try await Conversion.response(response)
    }
}

/// The responder of a handler, built once, on first use. herdd calls handler factories in the
/// master too (to check the spec), before the master blocks the signals it reads from a
/// signalfd; a router's construction may start threads (FileMiddleware takes
/// `NIOThreadPool.singleton`), and a thread started then would take SIGTERM or SIGUSR2 with the
/// default action and kill the master. Built on a worker's first request, it never runs in the
/// master, and its threads inherit the worker's blocked signals.
final class ResponderSlot<Responder: HTTPResponder>: Sendable {
    private let make: @Sendable () -> Responder
    private let built: NIOLockedValueBox<Responder?>

    init(_ make: @escaping @Sendable () -> Responder) {
        self.make = make
        self.built = NIOLockedValueBox(nil)
    }

    func get() -> Responder {
        built.withLockedValue { built in
            if let built { return built }
            let responder = make()
            built = responder
            return responder
        }
    }
}

extension HummingbirdHandler where Responder.Context.Source == HerdRequestContextSource {
    /// For contexts built from herdd's source (``HerdRequestContext``, or your own context with
    /// `typealias Source = HerdRequestContextSource`).
    public init(logger: Logger = Logger(label: "hummingbird"), responder: @escaping @Sendable () -> Responder) {
        self.init(logger: logger, responder: responder) { herd, logger in
            Responder.Context(source: HerdRequestContextSource(herd: herd, logger: logger))
        }
    }
}

extension HummingbirdHandler where Responder.Context.Source == ApplicationRequestContextSource {
    /// For contexts built from Hummingbird's own source (`BasicRequestContext`, and any context
    /// that names no source): the same router then runs on `Application` and on herdd.
    /// There is no NIO channel under herdd: `source.channel` is a placeholder (a testing
    /// channel, one per worker, as HummingbirdTesting's router tests use), never connected.
    public init(logger: Logger = Logger(label: "hummingbird"), responder: @escaping @Sendable () -> Responder) {
        self.init(logger: logger, responder: responder) { _, logger in
            Responder.Context(source: ApplicationRequestContextSource(channel: PlaceholderChannel.shared, logger: logger))
        }
    }
}

/// The channel of Application-sourced contexts under herdd: made on first use (in a worker).
enum PlaceholderChannel {
    static let shared = NIOAsyncTestingChannel()
}
