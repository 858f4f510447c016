/// Size limits enforced by `HTTPRequestParser`.
package struct HTTPLimits: Sendable {
    /// Longest request line (without CRLF) -> 414 when exceeded.
    package var maxRequestLine: Int
    /// Longest request head, request line and terminating blank line included -> 431.
    /// Also bounds the trailer section of a chunked body.
    package var maxHeaderBytes: Int
    /// Most header fields in a head -> 431. Also bounds trailer fields.
    package var maxHeaderCount: Int
    /// Largest (decoded) body -> 413.
    package var maxBodyBytes: Int

    package init(maxRequestLine: Int = 8192, maxHeaderBytes: Int = 32768,
                maxHeaderCount: Int = 100, maxBodyBytes: Int = 1 << 20) {
        self.maxRequestLine = maxRequestLine
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
        self.maxBodyBytes = maxBodyBytes
    }
}
