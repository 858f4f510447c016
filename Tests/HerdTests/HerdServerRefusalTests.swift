import Herd
import XCTest

/// `HerdServer.main` refuses a program name that cannot be a handler name and a
/// `threadsPerWorker` outside 1...64 (`HerdServer.refusal`, before anything starts).
final class HerdServerRefusalTests: XCTestCase {
    func testInvalidNamesAreRefused() {
        for name in ["", "a:b", "a=b", "a,b", "a b", "a\tb", "metrics"] {
            let message = HerdServer.refusal(name: name, threadsPerWorker: 1)
            XCTAssertEqual(message, "\(name): the program's name must be non-empty, without ':', '=', ',' or spaces, and not 'metrics'",
                           name.debugDescription)
        }
    }

    func testThreadsPerWorkerOutsideOneToSixtyFourIsRefused() {
        for threads in [0, 65, -1, Int.min, Int.max] {
            XCTAssertEqual(HerdServer.refusal(name: "notes-api", threadsPerWorker: threads),
                           "notes-api: threadsPerWorker must be 1...64, not \(threads)")
        }
    }

    func testValidNameAndThreadsAreAccepted() {
        for threads in [1, 2, 64] {
            XCTAssertNil(HerdServer.refusal(name: "notes-api", threadsPerWorker: threads), "\(threads)")
        }
        // Names near the reserved one and the separators are fine.
        for name in ["metrics2", "my-metrics", "notes_api.v2", "herdd"] {
            XCTAssertNil(HerdServer.refusal(name: name, threadsPerWorker: 1), name)
        }
    }

    func testTheNameIsJudgedFirst() {
        XCTAssertEqual(HerdServer.refusal(name: "a:b", threadsPerWorker: 0),
                       "a:b: the program's name must be non-empty, without ':', '=', ',' or spaces, and not 'metrics'")
    }
}
