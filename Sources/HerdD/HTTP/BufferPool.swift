import HerdSys
import Handlers

/// The memory a connection needs only while a request is in progress, pooled per worker, and the
/// worker's giving back of memory when connections go away (issue 17).
///
/// An idle keep-alive connection holds no buffer: its input buffer (4 KiB), output buffer
/// (1 KiB reserved) and parser state (320 bytes) come from here when bytes arrive and go back
/// when the connection is idle again, as nginx frees its header buffers on idle keep-alive
/// connections. The worker is single-threaded and serves one connection at a time, so on the
/// hot path (a request read, answered and sent in one turn) the same warm buffers and parser go
/// from connection to connection; only connections with a request in progress (partial input,
/// unsent output) keep theirs across turns.
///
/// Memory given back: once a second (the worker's sweep), when at least `reclaimAfter`
/// connections and half of the peak have gone since the last reclaim, the worker shrinks its
/// connection table, frees pooled buffers beyond `keep`, and calls malloc_trim(0), which returns
/// the free pages inside the heap to the kernel too (the heap's top alone is trimmed by free(),
/// and any live allocation above the freed connections pins it).
final class BufferPool {
    static let inputSize = 4096
    static let outputCapacity = 1024
    /// Free buffers of each kind kept for reuse; more are freed at once.
    let keep: Int
    private var inputs: [UnsafeMutableRawBufferPointer] = []
    private var outputs: [[UInt8]] = []
    private var parsers: [ParserBox] = []
    /// The most connections open at once since the last reclaim (every road in counts:
    /// ConnectionRegistry.register calls `noteOpen`).
    private(set) var peak = 0
    /// Reclaims done (for tests).
    private(set) var reclaims = 0
    static let reclaimAfter = 256

    init(keep: Int = 32) {
        self.keep = keep
        inputs.reserveCapacity(keep)
        outputs.reserveCapacity(keep)
        parsers.reserveCapacity(keep)
    }

    /// glibc malloc settings for a worker. Fixed thresholds: by default glibc raises the mmap
    /// threshold (and the trim threshold with it) after a large block is freed, so large request
    /// buffers would afterwards live in the heap and a heap top of up to 64 MiB would be kept.
    /// One arena: the worker serves on one thread; a handler that starts threads should not make
    /// malloc keep a heap per thread. mallopt returns 1 on success, 0 on failure (no errno).
    static func configureMalloc() -> [String] {
        var failed: [String] = []
        if !Sys.setMalloc(.mmapThreshold, 128 * 1024) { failed.append("M_MMAP_THRESHOLD") }
        if !Sys.setMalloc(.trimThreshold, 128 * 1024) { failed.append("M_TRIM_THRESHOLD") }
        if !Sys.setMalloc(.arenaMax, 1) { failed.append("M_ARENA_MAX") }
        return failed
    }

    // MARK: - Buffers

    func takeInput() -> UnsafeMutableRawBufferPointer {
        inputs.popLast() ?? UnsafeMutableRawBufferPointer.allocate(byteCount: BufferPool.inputSize, alignment: 16)
    }

    /// Takes back an input buffer (one of another size, grown for a large request, is freed).
    func giveInput(_ buffer: UnsafeMutableRawBufferPointer) {
        guard buffer.baseAddress != nil else { return }
        if buffer.count == BufferPool.inputSize && inputs.count < keep {
            inputs.append(buffer)
        } else {
            buffer.deallocate()
        }
    }

    func takeOutput() -> [UInt8] {
        if let o = outputs.popLast() { return o }
        var o: [UInt8] = []
        o.reserveCapacity(BufferPool.outputCapacity)
        return o
    }

    /// Takes `output`'s storage (empty, capacity kept) and leaves an empty array without storage.
    func giveOutput(_ output: inout [UInt8]) {
        var o: [UInt8] = []
        swap(&o, &output)
        guard o.capacity >= BufferPool.outputCapacity, o.capacity <= 65536, outputs.count < keep else { return }
        o.removeAll(keepingCapacity: true)
        outputs.append(o)
    }

    func takeParser(limits: HTTPLimits) -> ParserBox {
        parsers.popLast() ?? ParserBox(HTTPRequestParser(limits: limits))
    }

    /// Takes back a parser at a request boundary (reset anyway: it may hold nothing of the
    /// connection it served).
    func giveParser(_ box: ParserBox) {
        guard parsers.count < keep else { return }
        box.parser.reset()
        parsers.append(box)
    }

    // MARK: - Giving memory back

    func noteOpen(_ active: Int) {
        if active > peak { peak = active }
    }

    /// Whether enough connections went away since the last reclaim to make one worth it.
    func shouldReclaim(active: Int) -> Bool {
        peak - active >= BufferPool.reclaimAfter && active <= peak / 2
    }

    /// Shrinks `table` (connections indexed by fd) to just past its highest open fd, frees the
    /// pooled buffers beyond a few, and returns free heap pages to the kernel.
    func reclaim<T>(active: Int, table: inout [T?]) {
        var end = table.count
        while end > 0 && table[end - 1] == nil { end -= 1 }
        // A new array of the smaller size: removing elements would keep the capacity.
        if end + 64 < table.count { table = Array(table[0..<(end + 64)]) }
        let few = min(keep, 4)
        while inputs.count > few { inputs.removeLast().deallocate() }
        if outputs.count > few { outputs.removeLast(outputs.count - few) }
        if parsers.count > few { parsers.removeLast(parsers.count - few) }
        // malloc_trim(0): release the heap's free pages (Sys.trimMalloc, HerdSys/ThisProcess.swift).
        Sys.trimMalloc()
        peak = active
        reclaims += 1
    }
}

/// A parser in its own heap block, so that a connection between requests holds 8 bytes for it.
final class ParserBox {
    var parser: HTTPRequestParser
    init(_ parser: HTTPRequestParser) { self.parser = parser }
}
