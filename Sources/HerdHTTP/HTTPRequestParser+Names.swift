import HerdLibc

// HTTPRequestParser: common methods and field names, returned as static strings (no allocation).
extension HTTPRequestParser {
    // MARK: common names

    // Field names and methods that nearly every request carries, spelled as clients send them,
    // are taken from literals: no UTF-8 validation, no allocation, no reference counting (the
    // spelling is kept: the bytes must match exactly). Others are decoded as usual.

    @inline(__always)
    static func same(_ p: UnsafeRawBufferPointer, _ s: StaticString) -> Bool {
        guard let b = p.baseAddress, p.count == s.utf8CodeUnitCount else { return false }
        return memcmp(b, s.utf8Start, p.count) == 0
    }

    static func commonFieldName(_ p: UnsafeRawBufferPointer) -> String? {
        switch p.count {
        case 4:
            if same(p, "Host") { return "Host" }
            if same(p, "host") { return "host" }
        case 6:
            if same(p, "Accept") { return "Accept" }
            if same(p, "Cookie") { return "Cookie" }
            if same(p, "Origin") { return "Origin" }
            if same(p, "Expect") { return "Expect" }
            if same(p, "accept") { return "accept" }
        case 7:
            if same(p, "Referer") { return "Referer" }
        case 10:
            if same(p, "User-Agent") { return "User-Agent" }
            if same(p, "Connection") { return "Connection" }
            if same(p, "user-agent") { return "user-agent" }
            if same(p, "connection") { return "connection" }
        case 12:
            if same(p, "Content-Type") { return "Content-Type" }
            if same(p, "content-type") { return "content-type" }
        case 13:
            if same(p, "Cache-Control") { return "Cache-Control" }
            if same(p, "Authorization") { return "Authorization" }
            if same(p, "If-None-Match") { return "If-None-Match" }
        case 14:
            if same(p, "Content-Length") { return "Content-Length" }
            if same(p, "content-length") { return "content-length" }
        case 15:
            if same(p, "Accept-Encoding") { return "Accept-Encoding" }
            if same(p, "Accept-Language") { return "Accept-Language" }
            if same(p, "X-Forwarded-For") { return "X-Forwarded-For" }
            if same(p, "accept-encoding") { return "accept-encoding" }
        case 17:
            if same(p, "Transfer-Encoding") { return "Transfer-Encoding" }
            if same(p, "If-Modified-Since") { return "If-Modified-Since" }
        default:
            break
        }
        return nil
    }

    static func commonMethod(_ p: UnsafeRawBufferPointer) -> String? {
        switch p.count {
        case 3:
            if same(p, "GET") { return "GET" }
            if same(p, "PUT") { return "PUT" }
        case 4:
            if same(p, "HEAD") { return "HEAD" }
            if same(p, "POST") { return "POST" }
        case 5:
            if same(p, "PATCH") { return "PATCH" }
        case 6:
            if same(p, "DELETE") { return "DELETE" }
        case 7:
            if same(p, "OPTIONS") { return "OPTIONS" }
        default:
            break
        }
        return nil
    }
}
