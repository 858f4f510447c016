import Herd
import XCTest

/// Calls a router's handler the way a worker does, without a server.
struct TestClient {
    let handler: RouterHandler
    let context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")

    init(_ router: Router) { handler = router.handler() }

    func send(_ method: String, _ target: String, headers: HTTPHeaders = [:], body: String = "") -> HTTPResponse {
        handler.handle(HTTPRequest(method: method, target: target, headers: headers, body: Array(body.utf8)), context: context)
    }
}

extension HTTPResponse {
    /// The body as text ("" for non-byte bodies).
    var text: String {
        if case .bytes(let b) = body { return String(decoding: b, as: UTF8.self) }
        return ""
    }

    /// The body as a JSON object.
    var json: [String: Any]? {
        guard case .bytes(let b) = body else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(b))) as? [String: Any]
    }
}
