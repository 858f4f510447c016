import Foundation
import Herd
import NotesAPI
import XCTest

/// The handler called directly (no server): routes, JSON, errors, and the rows in SQLite.
final class NotesHandlerTests: XCTestCase {
    var dir = ""
    var handler: NotesHandler!
    let context = HandlerContext(listenerName: "http", workerID: 0, pid: getpid(), peer: "127.0.0.1:1")

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("notes-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        handler = try NotesHandler(databasePath: dir + "/notes.sqlite")
    }

    override func tearDownWithError() throws {
        handler = nil
        try? FileManager.default.removeItem(atPath: dir)
    }

    func send(_ method: String, _ target: String, json: String? = nil, type: String = "application/json") -> (Int, HTTPHeaders, Any?) {
        var headers = HTTPHeaders()
        if json != nil { headers.add("Content-Type", type) }
        let r = handler.handle(HTTPRequest(method: method, target: target, headers: headers, body: Array((json ?? "").utf8)),
                               context: context)
        guard case .bytes(let bytes) = r.body else { XCTFail("body is not bytes"); return (r.status, r.headers, nil) }
        return (r.status, r.headers, bytes.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(bytes)))
    }

    func testCreateGetListDelete() throws {
        let (s1, h1, b1) = send("POST", "/notes", json: #"{"title": " first ", "body": "hello"}"#)
        XCTAssertEqual(s1, 201)
        XCTAssertEqual(h1["Content-Type"], "application/json")
        let note = try XCTUnwrap(b1 as? [String: Any])
        XCTAssertEqual(note["title"] as? String, "first")
        XCTAssertEqual(note["body"] as? String, "hello")
        let id = try XCTUnwrap(note["id"] as? Int)
        XCTAssertEqual(h1["Location"], "/notes/\(id)")

        _ = send("POST", "/notes", json: #"{"title": "second"}"#)
        let (s2, _, b2) = send("GET", "/notes/\(id)")
        XCTAssertEqual(s2, 200)
        XCTAssertEqual((b2 as? [String: Any])?["title"] as? String, "first")

        let (s3, _, b3) = send("GET", "/notes?limit=1")
        XCTAssertEqual(s3, 200)
        let notes = try XCTUnwrap((b3 as? [String: Any])?["notes"] as? [[String: Any]])
        XCTAssertEqual(notes.map { $0["title"] as? String }, ["second"])

        XCTAssertEqual(send("DELETE", "/notes/\(id)").0, 204)
        XCTAssertEqual(send("DELETE", "/notes/\(id)").0, 404)
        XCTAssertEqual(send("GET", "/notes/\(id)").0, 404)
    }

    func testErrorsAreJSON() {
        let cases: [(String, String, String?, String, Int)] = [
            ("GET", "/nope", nil, "application/json", 404),
            ("GET", "/notes/abc", nil, "application/json", 404),
            ("POST", "/notes", "{not json", "application/json", 400),
            ("POST", "/notes", #"{"body": "no title"}"#, "application/json", 400),
            ("POST", "/notes", #"{"title": "   "}"#, "application/json", 422),
            ("POST", "/notes", #"{"title": "x"}"#, "text/plain", 415),
            ("GET", "/notes?limit=0", nil, "application/json", 400),
            ("PUT", "/notes", nil, "application/json", 405),
        ]
        for (method, target, json, type, status) in cases {
            let (s, h, b) = send(method, target, json: json, type: type)
            XCTAssertEqual(s, status, "\(method) \(target)")
            XCTAssertEqual(h["Content-Type"], "application/json")
            let body = b as? [String: Any]
            XCTAssertEqual(body?["status"] as? Int, status, "\(method) \(target)")
            XCTAssertNotNil(body?["error"] as? String)
        }
        XCTAssertEqual(send("PUT", "/notes").1["Allow"], "GET, HEAD, POST")
    }

    func testTwoConnectionsSeeTheSameRows() throws {
        // Two handlers on one file, as two workers would have.
        let other = try NotesHandler(databasePath: dir + "/notes.sqlite")
        _ = send("POST", "/notes", json: #"{"title": "shared"}"#)
        let r = other.handle(HTTPRequest(target: "/health"), context: context)
        guard case .bytes(let bytes) = r.body else { return XCTFail("body is not bytes") }
        let health = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        XCTAssertEqual(health["notes"] as? Int, 1)
        XCTAssertEqual(health["status"] as? String, "ok")
    }
}
