import Herd
import XCTest

struct NewNote: Decodable {
    var title: String
    var tags: [String]
}

struct Item: Codable, Equatable {
    var id: Int
    var name: String
}

/// Codable in and out: decode errors (415, 400 naming the field), Encodable results as JSON,
/// edited status and headers, typed query parameters with percent-decoding.
final class CodableTests: XCTestCase {
    func router() -> Router {
        let router = Router()
        router.post("notes") { request, context in
            let note = try request.decode(as: NewNote.self, context: context)
            return EditedResponse(status: .created, headers: ["Location": "/notes/1"], json: ["title": note.title])
        }
        router.get("items") { _, _ in [Item(id: 1, name: "a"), Item(id: 2, name: "b")] }
        router.get("query") { request, _ in
            let q = request.uri.queryParameters
            return "\(q.get("done", as: Bool.self).map(String.init) ?? "nil") \(q.get("tag") ?? "nil") \(try q.require("limit", as: Int.self))"
        }
        return router
    }

    let json: HTTPHeaders = ["Content-Type": "application/json; charset=utf-8"]

    func testDecodeAndEncode() throws {
        let client = TestClient(router())
        let created = client.send("POST", "/notes", headers: json, body: #"{"title": "t", "tags": []}"#)
        XCTAssertEqual(created.status, 201)
        XCTAssertEqual(created.headers["Location"], "/notes/1")
        XCTAssertEqual(created.headers["Content-Type"], "application/json")
        XCTAssertEqual(created.json?["title"] as? String, "t")

        let items = client.send("GET", "/items")
        XCTAssertEqual(items.headers["Content-Type"], "application/json")
        guard case .bytes(let bytes) = items.body else { return XCTFail("not bytes") }
        XCTAssertEqual(try JSONDecoder().decode([Item].self, from: Data(bytes)), [Item(id: 1, name: "a"), Item(id: 2, name: "b")])
    }

    func testDecodeErrorsNameTheField() {
        let client = TestClient(router())
        let cases: [(HTTPHeaders, String, Int, String)] = [
            (["Content-Type": "text/plain"], "{}", 415, "Content-Type must be application/json"),
            ([:], "{}", 415, "Content-Type must be application/json"),
            (json, "{not json", 400, "invalid JSON: the body is not well-formed JSON"),
            (json, #"{"tags": []}"#, 400, "invalid JSON: missing field 'title'"),
            (json, #"{"title": 5, "tags": []}"#, 400, "invalid JSON: field 'title': expected a string"),
            (json, #"{"title": "x", "tags": ["a", 2]}"#, 400, "invalid JSON: field 'tags[1]': expected a string"),
            (json, #"{"title": null, "tags": []}"#, 400, "invalid JSON: field 'title': expected a string, got null"),
        ]
        for (headers, body, status, message) in cases {
            let r = client.send("POST", "/notes", headers: headers, body: body)
            XCTAssertEqual(r.status, status, body)
            XCTAssertEqual(r.json?["error"] as? String, message, body)
            XCTAssertEqual(r.json?["status"] as? Int, status, body)
        }
    }

    func testQueryParametersArePercentDecodedAndTyped() {
        let client = TestClient(router())
        XCTAssertEqual(client.send("GET", "/query?done=%74rue&tag=a+b%2Fc&limit=5").text, "true a b/c 5")
        XCTAssertEqual(client.send("GET", "/query?limit=5&done=maybe").text, "nil nil 5")
        let missing = client.send("GET", "/query")
        XCTAssertEqual(missing.status, 400)
        XCTAssertEqual(missing.json?["error"] as? String, "missing query parameter 'limit'")
        let bad = client.send("GET", "/query?limit=ten")
        XCTAssertEqual(bad.json?["error"] as? String, "query parameter 'limit' is not a valid Int: 'ten'")
        let q = QueryParameters(query: "a=1&a=2&flag&bad=%zz&utf=%C3%A9")
        XCTAssertEqual(q.getAll("a"), ["1", "2"])
        XCTAssertEqual(q.get("flag"), "")
        XCTAssertEqual(q.get("bad"), "%zz")
        XCTAssertEqual(q.get("utf"), "é")
    }
}
