/// When a leaving worker (max-requests, reload, TTOU, upgrade, stop) may close a keep-alive
/// connection without losing a request.
///
/// Closing a keep-alive connection races with its client: a request sent just before the
/// close meets an EOF (or a reset) and is lost without a response. So a draining worker closes
/// a connection only
/// - after a response that said `Connection: close` (the response that reaches max-requests,
///   and every response of a draining worker, do), or
/// - when it has been silent in both directions for `idleNanos`: a client that sends
///   back-to-back is never idle that long, and one that is has no request in flight.
/// Connections that never sent a request get the same grace (their first one may be on its way).
enum DrainPolicy {
    static let idleNanos: UInt64 = 1_000_000_000

    static func mayClose(idleFor nanos: UInt64) -> Bool { nanos >= idleNanos }
}
