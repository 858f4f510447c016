import Foundation
import Herd
import XCTest

// The own-server example of README.md, verbatim between the markers (the test below checks that
// README.md still holds this text), so the front door's example compiles and answers as it says.
// README example: begin
struct NewBookmark: Decodable { var url: String }
struct Bookmark: Codable { var id: Int; var url: String }

func makeRouter() -> Router {
    let router = Router()
    router.get("health", mayBlock: false) { _, _ in "ok\n" }          // cannot block: no hand-off
    router.get("bookmarks/:id") { _, context in
        let id = try context.parameters.require("id", as: Int.self)     // 400 if not an Int
        guard id == 1 else { throw HTTPError(.notFound, message: "no bookmark \(id)") }
        return Bookmark(id: 1, url: "https://swift.org")                // any Encodable: JSON
    }
    router.post("bookmarks") { request, context in
        let new = try request.decode(as: NewBookmark.self, context: context)  // 415 / 400 naming the field
        return EditedResponse(status: .created, json: Bookmark(id: 2, url: new.url))
    }
    return router
}
// README example: end

/// README's last line of the example, in a function here: top-level code runs only in main.swift.
func readmeExampleMain() -> Never {
    HerdServer.main(name: "bookmarks", version: "0.1.0") { _ in makeRouter() }   // the closure runs in each worker
}

final class ReadmeExampleTests: XCTestCase {
    func testReadmeHoldsThisExample() throws {
        let here = URL(fileURLWithPath: #filePath)
        let readme = try String(contentsOf: here.appendingPathComponent("../../../README.md").standardized, encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        let begin = try XCTUnwrap(source.range(of: "// README example: begin\n"))
        let end = try XCTUnwrap(source.range(of: "// README example: end\n"))
        let example = String(source[begin.upperBound..<end.lowerBound])
        XCTAssertTrue(readme.contains(example), "README.md's own-server example differs from ReadmeExampleTests.swift")
        let mainLine = "HerdServer.main(name: \"bookmarks\", version: \"0.1.0\") { _ in makeRouter() }   // the closure runs in each worker\n"
        XCTAssertTrue(source.contains("    " + mainLine))
        XCTAssertTrue(readme.contains(example + "\n" + mainLine), "README.md's HerdServer.main line differs")
    }

    func testTheExampleAnswersAsReadmeSays() {
        let client = TestClient(makeRouter())
        XCTAssertEqual(client.send("GET", "/health").text, "ok\n")
        let one = client.send("GET", "/bookmarks/1")
        XCTAssertEqual(one.status, 200)
        XCTAssertEqual(one.json?["url"] as? String, "https://swift.org")
        XCTAssertEqual(client.send("GET", "/bookmarks/7").status, 404)
        XCTAssertEqual(client.send("GET", "/bookmarks/x").status, 400)
        let json: HTTPHeaders = ["Content-Type": "application/json"]
        let created = client.send("POST", "/bookmarks", headers: json, body: #"{"url": "https://example.org"}"#)
        XCTAssertEqual(created.status, 201)
        XCTAssertEqual(created.json?["id"] as? Int, 2)
        XCTAssertEqual(client.send("POST", "/bookmarks", body: "{}").status, 415)
        XCTAssertEqual(client.send("POST", "/bookmarks", headers: json, body: "{}").status, 400)
    }
}
