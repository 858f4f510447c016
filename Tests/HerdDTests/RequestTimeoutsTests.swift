import Testing
@testable import HerdD

/// The head and body rules of a request in progress (issue 24, part 2; RequestTimeouts.swift).
@Suite struct RequestTimeoutsTests {
    let s: UInt64 = 1_000_000_000
    var rules: RequestTimeouts { RequestTimeouts(headerNanos: 10 * s, bodyNanos: 10 * s, bodyMinRate: 500) }

    @Test func headAloneHasTheHeaderTimeout() {
        #expect(rules.overdue(now: 10 * s, requestStartedAt: 0, bodyStartedAt: nil, bodyBytes: 0, lastReadAt: 9 * s) == nil)
        #expect(rules.overdue(now: 10 * s + 1, requestStartedAt: 0, bodyStartedAt: nil, bodyBytes: 0, lastReadAt: 10 * s) == .headerTimeout)
    }

    @Test func honestSlowUploadsAreNeverCut() {
        // 800 KB at 64 KB/s (12.5 s) and 2 MB at 32 KB/s (64 s), judged every 100 ms; the head
        // came at 0.
        for rate in [64 * 1024, 32 * 1024] {
            let total = rate == 64 * 1024 ? 800 * 1024 : 2 * 1024 * 1024
            var t: UInt64 = 0
            while true {
                let sent = min(total, Int(t / 1_000_000) * rate / 1000)
                #expect(rules.overdue(now: t, requestStartedAt: 0, bodyStartedAt: 0, bodyBytes: sent, lastReadAt: t) == nil)
                if sent == total { break }
                t += s / 10
            }
        }
    }

    @Test func oneBytePerSecondIsCutAfterTheGrace() {
        // Never silent for more than 1 s, so only the rate rule can cut it: 10 s of grace plus
        // 2 ms per byte received.
        var cutAt: UInt64? = nil
        for sec in UInt64(1)...30 where cutAt == nil {
            let now = sec * s + s / 2
            if rules.overdue(now: now, requestStartedAt: 0, bodyStartedAt: 0, bodyBytes: Int(sec), lastReadAt: sec * s) != nil { cutAt = now }
        }
        #expect(cutAt == 10 * s + s / 2)
    }

    @Test func silenceLongerThanTheBodyTimeoutIsCut() {
        // 1 MB at once, then nothing: the rate rule would allow 2,000 s more; the gap rule cuts.
        #expect(rules.overdue(now: 11 * s, requestStartedAt: 0, bodyStartedAt: 0, bodyBytes: 1 << 20, lastReadAt: 1 * s) == nil)
        #expect(rules.overdue(now: 11 * s + 1, requestStartedAt: 0, bodyStartedAt: 0, bodyBytes: 1 << 20, lastReadAt: 1 * s) == .bodyTimeout)
    }

    @Test func noRateRuleWhenTheMinimumIsZero() {
        let gapOnly = RequestTimeouts(headerNanos: 10 * s, bodyNanos: 10 * s, bodyMinRate: 0)
        #expect(gapOnly.overdue(now: 1000 * s, requestStartedAt: 0, bodyStartedAt: 0, bodyBytes: 1, lastReadAt: 999 * s) == nil)
    }

    @Test func sizesTakeSuffixes() throws {
        var c = ServerConfig()
        try c.apply(key: "max-body", value: "4m", origin: "test")
        #expect(c.maxBodyBytes == 4 << 20)
        try c.apply(key: "body-min-rate", value: "2k", origin: "test")
        #expect(c.bodyMinRate == 2048)
        try c.apply(key: "max-body", value: "123", origin: "test")
        #expect(c.maxBodyBytes == 123)
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "max-body", value: "4x", origin: "test") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "max-body", value: "m", origin: "test") }
        #expect(throws: ServerConfig.ConfigError.self) { try c.apply(key: "max-body", value: "-1k", origin: "test") }
        try c.apply(key: "body-timeout", value: "2.5", origin: "test")
        #expect(try ServerConfig.deserialize(c.serialized()) == c)
    }
}
