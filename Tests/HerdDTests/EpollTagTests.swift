import Testing
@testable import HerdD

/// HerdD's roles of an epoll registration, encoded in the 64 bits of user data HerdSys carries.
@Suite struct EpollTagTests {
    @Test func epollTagsRoundTrip() {
        let tags: [EpollTag] = [
            .connection(0), .connection(7), .connection(Int32.max), .listener(0), .listener(15),
            .signals, .dispatch, .upgradePipe, .upgradeHandover, .metricsListener(3), .metricsClient(1234), .executor, .watcherWake,
        ]
        for t in tags { #expect(EpollTag(rawValue: t.rawValue) == t) }
        // A connection's tag is its fd, as before the enum (the worker's hot path decodes it).
        #expect(EpollTag.connection(42).rawValue == 42)
        #expect(Set(tags.map(\.rawValue)).count == tags.count)
        #expect(EpollTag(rawValue: 99 << 32) == nil)
    }
}
