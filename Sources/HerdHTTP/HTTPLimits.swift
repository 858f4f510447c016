/// Size limits enforced by `HTTPRequestParser`.
public struct HTTPLimits: Sendable {
    /// Longest request line (without CRLF) -> 414 when exceeded.
    public var maxRequestLine: Int
    /// Longest request head, request line and terminating blank line included -> 431.
    /// Also bounds the trailer section of a chunked body.
    public var maxHeaderBytes: Int
    /// Most header fields in a head -> 431. Also bounds trailer fields.
    public var maxHeaderCount: Int
    /// Largest (decoded) body -> 413.
    public var maxBodyBytes: Int

    public init(maxRequestLine: Int = 8192, maxHeaderBytes: Int = 32768,
                maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}
