import Testing
@testable import HerdD

/// Names a program may register with HerdServer.main(handlers:).
@Suite struct HerdEntryTests {
    @Test func handlerNames() {
        for good in ["api", "notes", "my-app", "v2_api", "static"] {
            #expect(HerdEntry.isValidName(good), "\(good)")
        }
        for bad in ["", "metrics", "a:b", "a=b", "a,b", "a b", "tab\there"] {
            #expect(!HerdEntry.isValidName(bad), "\(bad)")
        }
    }
}
