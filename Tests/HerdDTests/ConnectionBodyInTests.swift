import Glibc
import Handlers
import Testing
@testable import HerdD
import HerdSys

/// A request body streamed in to its handler (Connection+BodyIn.swift), on a socketpair with
/// RecordingHost: the handler starts at the end of the head, the connection stops reading at
/// the stream's limit and reads on when the reader makes room, keep-alive after the body's end,
/// an answer before it closes the connection, and a client that leaves fails the stream.
@Suite struct ConnectionBodyInTests {
    /// Sends as much of `bytes` as the socket takes now; returns how much.
    private func sendSome(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, 0) }
            if n <= 0 { break }
            sent += n
        }
        return sent
    }

    /// A connection of a host whose `/up` bodies stream in, and the client's end.
    private func streaming() throws -> (RecordingHost, HTTPConnection<RecordingHost>, Int32) {
        let (server, client) = try socketPair()
        let host = RecordingHost()
        host.streamPaths = ["/up"]
        return (host, host.connection(server), client)
    }

    private func head(_ length: Int) -> [UInt8] { Array("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: \(length)\r\n\r\n".utf8) }

    @Test func theConnectionStopsReadingAtTheLimitAndReadsOnWhenTheReaderTakes() async throws {
        let (host, conn, client) = try streaming()
        defer { close(client) }
        let total = 1000 * 1000 // under HTTPLimits' default --max-body
        let message = head(total) + [UInt8](repeating: 9, count: total)
        var sent = sendSome(client, message)
        conn.readable()
        #expect(host.handledPaths == ["/up"]) // the handler started at the end of the head
        let body = try #require(host.bodiesIn.first)
        #expect(conn.bodyInPaused)
        // Unread bytes wait in the socket, not in the worker: the stream's limit and the
        // read-ahead at most (plus one read's overshoot).
        #expect(conn.bytesRead < 3 * 64 * 1024 + 65536, "read \(conn.bytesRead) of \(sent)")
        #expect(conn.bytesRead < sent)
        var received = 0
        for _ in 0..<10_000 where received < total {
            guard let piece = try await body.next() else { break }
            received += piece.count
            conn.producerWoke() // what the worker's loop does on the stream's wake-up
            if sent < message.count {
                sent += sendSome(client, Array(message[sent...]))
                if !conn.bodyInPaused { conn.readable() }
            }
        }
        #expect(received == total)
        #expect(try await body.next() == nil)
        #expect(host.roomWakes.value > 0)
        // Keep-alive after the body's end: the answer, then the next request on the connection.
        conn.finishAsync(.text(200, "done\n"))
        let reply = receiveAll(client)
        #expect(reply.hasPrefix("HTTP/1.1 200 OK\r\n") && !reply.contains("Connection: close"))
        _ = sendSome(client, Array("GET /next HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        conn.readable()
        #expect(receiveAll(client).hasSuffix("hi /next\n"))
        #expect(!conn.closed)
    }

    @Test func anAnswerBeforeTheBodysEndClosesTheConnection() async throws {
        let (host, conn, client) = try streaming()
        defer { close(client) }
        _ = sendSome(client, head(100_000) + [UInt8](repeating: 1, count: 1000))
        conn.readable()
        let body = try #require(host.bodiesIn.first)
        conn.finishAsync(.text(200, "early\n"))
        let reply = receiveAll(client)
        #expect(reply.contains("Connection: close\r\n") && reply.hasSuffix("early\n"))
        #expect(try await body.next()?.count == 1000)
        await #expect(throws: RequestBodyError.connectionClosed) { try await body.next() }
        #expect(conn.lingering || conn.closed)
    }

    @Test func aClientThatLeavesFailsTheStreamAndAbandonsTheCall() async throws {
        let (host, conn, client) = try streaming()
        _ = sendSome(client, head(100_000) + [UInt8](repeating: 1, count: 10))
        conn.readable()
        let body = try #require(host.bodiesIn.first)
        close(client)
        conn.readable()
        #expect(conn.closed)
        #expect(host.abandoned.count == 1)
        #expect(try await body.next()?.count == 10)
        await #expect(throws: RequestBodyError.connectionClosed) { try await body.next() }
    }

    @Test func otherPathsStillGetTheWholeBody() throws {
        let (host, conn, client) = try streaming()
        defer { close(client) }
        _ = sendSome(client, Array("POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab".utf8))
        conn.readable()
        #expect(host.handledPaths.isEmpty && host.bodiesIn.isEmpty)
        _ = sendSome(client, Array("cde".utf8))
        conn.readable()
        #expect(host.handledPaths == ["/other"])
        #expect(receiveAll(client).hasSuffix("hi /other\n"))
    }
}
