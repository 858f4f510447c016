/// How long a client may take to send a request (issue 24, part 2): the head and the body have
/// rules of their own, as in nginx (`client_header_timeout`, `client_body_timeout`) and Apache
/// (`mod_reqtimeout` `header=...,body=20,MinRate=500`).
///
/// - Head: complete within `headerNanos` of its first byte (--header-timeout), or 408. A head
///   is small: a client that needs longer is a slowloris.
/// - Body: never silent for longer than `bodyNanos` (--body-timeout: the time between two
///   reads, nginx's rule), and on average at least `bodyMinRate` bytes/s (--body-min-rate) after
///   a first `bodyNanos` of grace: the deadline is the head's end + `bodyNanos` + 1 s per
///   `bodyMinRate` bytes received (Apache's rule). The first rule cuts a stalled upload; the
///   second a trickle that never stalls (1 B/s: 408 about `bodyNanos` after the head); an
///   honest slow upload (64 KB/s for 800 KB, 32 KB/s for 2 MB) is never cut, however long.
///
/// The connection applies the verdict only after reading what waits in its socket, so time
/// the worker spent elsewhere (a blocking handler) never counts against the client.
struct RequestTimeouts: Equatable, Sendable {
    var headerNanos: UInt64
    var bodyNanos: UInt64
    /// Bytes per second; 0: no rate rule (the gap rule alone).
    var bodyMinRate: UInt64

    /// Which deadline a request in progress has missed at `now`, if any. `bodyStartedAt`: when
    /// its head was complete (nil: still reading the head); `bodyBytes`: bytes read since;
    /// `lastReadAt`: its last progress.
    func overdue(now: UInt64, requestStartedAt: UInt64, bodyStartedAt: UInt64?, bodyBytes: Int, lastReadAt: UInt64) -> CloseReason? {
        guard let bodyStart = bodyStartedAt else {
            return now &- requestStartedAt > headerNanos ? .headerTimeout : nil
        }
        if now > lastReadAt && now - lastReadAt > bodyNanos { return .bodyTimeout }
        guard bodyMinRate > 0, now > bodyStart else { return nil }
        // 1 s per bodyMinRate bytes, in nanoseconds (no overflow below ~18 EB of body).
        let earned = UInt64(max(bodyBytes, 0)) &* 1_000_000_000 / bodyMinRate
        return now - bodyStart > bodyNanos &+ earned ? .bodyTimeout : nil
    }
}
