import Testing
import Handlers
@testable import HerdD

@Suite struct BufferPoolTests {
    @Test func inputBuffersAreReusedAndBounded() {
        let pool = BufferPool(keep: 2)
        let a = pool.takeInput()
        let b = pool.takeInput()
        let c = pool.takeInput()
        #expect(a.count == BufferPool.inputSize && b.count == BufferPool.inputSize)
        pool.giveInput(a)
        pool.giveInput(b)
        pool.giveInput(c)  // over `keep`: freed, not kept
        // LIFO: the most recently returned (warm) buffer comes back first.
        let again = pool.takeInput()
        #expect(again.baseAddress == b.baseAddress)
        #expect(pool.takeInput().baseAddress == a.baseAddress)
        // A grown buffer is freed on return, never handed out as a 4 KiB one.
        pool.giveInput(UnsafeMutableRawBufferPointer.allocate(byteCount: 20480, alignment: 16))
        let fresh = pool.takeInput()
        #expect(fresh.count == BufferPool.inputSize)
        // An empty buffer (a connection that holds none) is ignored.
        pool.giveInput(UnsafeMutableRawBufferPointer(start: nil, count: 0))
        pool.giveInput(again)
        pool.giveInput(fresh)
    }

    @Test func outputStorageMovesWithoutCopying() {
        let pool = BufferPool(keep: 4)
        var out = pool.takeOutput()
        #expect(out.capacity >= BufferPool.outputCapacity)
        out.append(contentsOf: [1, 2, 3])
        let storage = out.withUnsafeBufferPointer { $0.baseAddress }
        pool.giveOutput(&out)
        #expect(out.capacity == 0)  // the connection holds no storage any more
        let back = pool.takeOutput()
        #expect(back.isEmpty)
        #expect(back.withUnsafeBufferPointer { $0.baseAddress } == storage)
        // Very large output arrays are not kept.
        var big = [UInt8](repeating: 0, count: 200_000)
        pool.giveOutput(&big)
        #expect(big.capacity == 0)
        let next = pool.takeOutput()
        #expect(next.capacity < 200_000)
    }

    @Test func parserStateIsPooledAndResetOnReturn() {
        let pool = BufferPool(keep: 1)
        let box = pool.takeParser(limits: HTTPLimits())
        // Leave it mid-request, as a connection closed in the middle of a head would.
        let partial = Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8)
        #expect(partial.withUnsafeBytes { box.parser.advance($0) } == .needMore)
        pool.giveParser(box)
        pool.giveParser(ParserBox(HTTPRequestParser()))  // over `keep`: dropped
        let again = pool.takeParser(limits: HTTPLimits())
        #expect(again === box)
        // Reset: a complete request parses from the start of a new buffer.
        let full = Array("GET /x HTTP/1.1\r\nHost: y\r\n\r\n".utf8)
        #expect(full.withUnsafeBytes { again.parser.advance($0) } == .request(consumed: full.count))
        #expect(again.parser.takeRequest()?.path == "/x")
        #expect(pool.takeParser(limits: HTTPLimits()) !== box)
    }

    @Test func reclaimShrinksTheTableAfterManyCloses() {
        let pool = BufferPool(keep: 8)
        var table: [Int?] = Array(repeating: 1, count: 10_000)
        pool.noteOpen(10_000)
        #expect(!pool.shouldReclaim(active: 10_000))
        #expect(!pool.shouldReclaim(active: 9_900))  // a few closed: not worth it
        for i in 100..<10_000 { table[i] = nil }
        table[50] = nil
        #expect(pool.shouldReclaim(active: 99))
        pool.reclaim(active: 99, table: &table)
        #expect(table.count == 100 + 64)
        #expect(table.capacity < 1000)
        #expect(table[99] == 1 && table[50] == nil)
        #expect(pool.reclaims == 1)
        // The peak restarts from what is open now.
        #expect(!pool.shouldReclaim(active: 99))
        pool.noteOpen(1000)
        #expect(pool.shouldReclaim(active: 400))
    }

    @Test func mallocSettingsApply() {
        #expect(BufferPool.configureMalloc().isEmpty)
    }
}
