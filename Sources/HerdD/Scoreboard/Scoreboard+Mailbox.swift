import HerdLibc

/// The master's answers to `herdd reload` and `herdd upgrade` in the header: the outcome, a
/// message, and a sequence number written last, so a reader that sees it sees the rest.
extension Scoreboard {
    /// The last failure message (master side writes, commands read).
    var message: String {
        get {
            let bytes = UnsafeRawPointer(base + Scoreboard.messageWord).assumingMemoryBound(to: UInt8.self)
            var out: [UInt8] = []
            for i in 0..<((Scoreboard.headerWords - Scoreboard.messageWord) * 8 - 1) {
                let b = bytes[i]
                if b == 0 { break }
                out.append(b)
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    func setMessage(_ text: String) {
        let room = (Scoreboard.headerWords - Scoreboard.messageWord) * 8 - 1
        let bytes = UnsafeMutableRawPointer(base + Scoreboard.messageWord).assumingMemoryBound(to: UInt8.self)
        var n = 0
        for b in text.utf8.prefix(room) { bytes[n] = b; n += 1 }
        bytes[n] = 0
    }

    /// Master: publishes the outcome of a reload or an upgrade; the sequence number is written
    /// last (release store), so a reader that sees it also sees outcome and message.
    func publish(reload outcome: Outcome, message: String) {
        setMessage(message)
        setHeader(.reloadResult, outcome.rawValue)
        setHeader(.reloadSeq, header(.reloadSeq) &+ 1)
    }

    func publish(upgrade outcome: Outcome, newPID: pid_t, message: String) {
        setMessage(message)
        setHeader(.upgradeNewPID, UInt64(max(0, newPID)))
        setHeader(.upgradeResult, outcome.rawValue)
        setHeader(.upgradeSeq, header(.upgradeSeq) &+ 1)
    }
}
