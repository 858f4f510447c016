import Foundation
import Herd
import NotesAPI
import XCTest

/// The router called directly (no server): routes, JSON, errors, and the rows in SQLite.
final class NotesRouterTests: XCTestCase {
    var dir = ""
    var handler: RouterHandler!
    let context = HandlerContext(listenerName: "http", workerID: 0, pid: getpid(), peer: "127.0.0.1:1")

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("notes-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        handler = makeNotesRouter(store: try NoteStore(path: dir + "/notes.sqlite")).handler()
    }

    override func tearDownWithError() throws {
        handler = nil
        try? FileManager.default.removeItem(atPath: dir)
    }

    func send(_ method: String, _ target: String, json: String? = nil, type: String = "application/json",
              via handler: RouterHandler? = nil) -> (Int, HTTPHeaders, Any?) {
        var headers = HTTPHeaders()
        if json != nil { headers.add("Content-Type", type) }
        let r = (handler ?? self.handler).handle(
            HTTPRequest(method: method, target: target, headers: headers, body: Array((json ?? "").utf8)), context: context)
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
        XCTAssertEqual(send("HEAD", "/notes/\(id)").0, 200)

        let (s3, _, b3) = send("GET", "/notes?limit=%31")  // percent-decoded: limit=1
        XCTAssertEqual(s3, 200)
        let notes = try XCTUnwrap((b3 as? [String: Any])?["notes"] as? [[String: Any]])
        XCTAssertEqual(notes.map { $0["title"] as? String }, ["second"])

        XCTAssertEqual(send("DELETE", "/notes/\(id)").0, 204)
        XCTAssertEqual(send("DELETE", "/notes/\(id)").0, 404)
        XCTAssertEqual(send("GET", "/notes/\(id)").0, 404)
    }

    func testErrorsAreJSON() {
        let cases: [(String, String, String?, String, Int, String?)] = [
            ("GET", "/nope", nil, "application/json", 404, nil),
            ("GET", "/notes/abc", nil, "application/json", 400, "path parameter 'id' is not a valid Int64: 'abc'"),
            ("POST", "/notes", "{not json", "application/json", 400, nil),
            ("POST", "/notes", #"{"body": "no title"}"#, "application/json", 400, "invalid JSON: missing field 'title'"),
            ("POST", "/notes", #"{"title": "   "}"#, "application/json", 422, nil),
            ("POST", "/notes", #"{"title": "x"}"#, "text/plain", 415, nil),
            ("GET", "/notes?limit=0", nil, "application/json", 400, nil),
            ("PUT", "/notes", nil, "application/json", 405, nil),
        ]
        for (method, target, json, type, status, message) in cases {
            let (s, h, b) = send(method, target, json: json, type: type)
            XCTAssertEqual(s, status, "\(method) \(target)")
            XCTAssertEqual(h["Content-Type"], "application/json")
            let body = b as? [String: Any]
            XCTAssertEqual(body?["status"] as? Int, status, "\(method) \(target)")
            XCTAssertNotNil(body?["error"] as? String)
            if let message { XCTAssertEqual(body?["error"] as? String, message) }
        }
        XCTAssertEqual(send("PUT", "/notes").1["Allow"], "GET, HEAD, POST")
        XCTAssertEqual(send("POST", "/health").1["Allow"], "GET, HEAD")
    }

    func testTwoConnectionsSeeTheSameRows() throws {
        // Two routers on one file, as two workers would have.
        let other = makeNotesRouter(store: try NoteStore(path: dir + "/notes.sqlite")).handler()
        let (_, _, created) = send("POST", "/notes", json: #"{"title": "shared"}"#)
        let id = try XCTUnwrap((created as? [String: Any])?["id"] as? Int)
        let (status, _, body) = send("GET", "/notes/\(id)", via: other)
        XCTAssertEqual(status, 200)
        XCTAssertEqual((body as? [String: Any])?["title"] as? String, "shared")
        let (_, _, health) = send("GET", "/health", via: other)
        XCTAssertEqual((health as? [String: Any])?["status"] as? String, "ok")
    }

    func testValidateChecksThePathWithoutOpeningIt() {
        XCTAssertThrowsError(try NoteStore.validate(path: ""))
        XCTAssertThrowsError(try NoteStore.validate(path: dir + "/missing/notes.sqlite"))
        XCTAssertEqual(try NoteStore.validate(path: dir + "/new.sqlite"), dir + "/new.sqlite")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/new.sqlite"))
    }
}
