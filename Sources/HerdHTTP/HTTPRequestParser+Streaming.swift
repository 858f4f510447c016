// HTTPRequestParser: a body that streams out of the parser as it arrives (herdd's streamed
// request bodies, docs/async.md) instead of being gathered into the request.
//
// With `pauseAfterHead`, a complete head with a body answers `.needMore` with `pendingHead`
// set and consumes nothing more, until the caller decides: `collectBody()` (the usual: the
// body is gathered into `request.body`) or `streamBody()`. Streaming, every `.needMore` leaves
// the bytes decoded so far for `takeBodyPiece()` (and their input for `releaseDecodedInput()`);
// `.request` ends the body, the request's `body` holding its last piece. `maxBodyBytes` and
// the chunked framing rules apply as for a gathered body.
extension HTTPRequestParser {
    /// A head with a body waits for `collectBody()` or `streamBody()`.
    package var bodyUndecided: Bool { bodyMode == .undecided }

    /// A head is complete and its body (if any) is gathered into the request.
    package var bodyGathered: Bool { head != nil && bodyMode == .collect }

    /// The body of the pending head is gathered into the request (as without a pause).
    package mutating func collectBody() {
        if bodyMode == .undecided { bodyMode = .collect }
    }

    /// The body of the pending head streams: take its pieces with `takeBodyPiece()`.
    package mutating func streamBody() {
        guard bodyMode == .undecided, let framing = head?.framing else { return }
        bodyMode = .stream
        if case .length(let n) = framing { lengthLeft = n }
    }

    /// The body bytes decoded since the last call (streaming only; empty otherwise).
    package mutating func takeBodyPiece() -> [UInt8] {
        guard bodyMode == .stream, !chunkBody.isEmpty else { return [] }
        var piece: [UInt8] = []
        swap(&piece, &chunkBody)
        return piece
    }

    /// One step of a streamed body: what has arrived goes to `chunkBody`.
    mutating func streamStep(_ buf: UnsafeRawBufferPointer, framing: BodyFraming) -> Progress {
        guard case .length = framing else { return decodeChunked(buf) }
        let take = min(lengthLeft, buf.count - chunkPos)
        if take > 0 {
            chunkBody.appendBytes(UnsafeRawBufferPointer(rebasing: buf[chunkPos..<(chunkPos + take)]))
            chunkPos += take
            lengthLeft -= take
            bodyDecoded += take
        }
        guard lengthLeft == 0 else { return .needMore }
        completed = head.take()?.request
        completed?.body = chunkBody
        return .request(consumed: chunkPos)
    }
}

extension HTTPRequestParser.BodyFraming {
    var isNone: Bool {
        if case .none = self { return true }
        return false
    }
}
