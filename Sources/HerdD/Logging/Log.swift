import Logging
import HerdSys

/// Process-wide logging setup. herdd logs through swift-log; the handler writes journald-native
/// entries (sd_journal_sendv with HERDD_* fields) when stderr is connected to the journal
/// (JOURNAL_STREAM names stderr's device:inode), and plain text lines on stderr otherwise.
enum Log {
    static func bootstrap(role: String, workerID: Int? = nil, level: Logger.Level = .info) {
        let journal = stderrIsJournal()
        LoggingSystem.bootstrap { label in
            var h = HerdLogHandler(label: label, role: role, workerID: workerID, journal: journal)
            h.logLevel = level
            return h
        }
    }

    /// systemd sets JOURNAL_STREAM=<dev>:<ino> for stdout/stderr connected to journald; only
    /// if stderr is still that very stream do we switch to native journal entries.
    static func stderrIsJournal() -> Bool {
        guard let env = Sys.environment("JOURNAL_STREAM") else { return false }
        let parts = env.split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        guard let st = try? Sys.fstat(2) else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}

/// swift-log handler writing journald fields or text lines.
struct HerdLogHandler: LogHandler {
    let label: String
    let role: String
    let workerID: Int?
    let journal: Bool
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        write(level: event.level, message: event.message, metadata: event.metadata)
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
             source: String, file: String, function: String, line: UInt) {
        write(level: level, message: message, metadata: explicit)
    }

    private func write(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?) {
        var fields = self.metadata
        if let explicit { fields.merge(explicit) { _, new in new } }
        if journal {
            JournalEncoding.send(JournalEncoding.fields(
                message: message.description, priority: JournalEncoding.priority(level), role: role,
                workerID: workerID, metadata: fields))
        } else {
            var text = "\(ProgramName.current)[\(Sys.processID())] \(role)"
            if let workerID { text += "/\(workerID)" }
            text += " \(level): \(message)"
            for (k, v) in fields.sorted(by: { $0.key < $1.key }) { text += " \(k)=\(v)" }
            text += "\n"
            var bytes = Array(text.utf8)
            bytes.withUnsafeMutableBytes { Sys.writeAll(2, UnsafeRawBufferPointer($0)) }
        }
    }
}

/// Encoding of log records as journald fields. Metadata keys become upper-case fields with the
/// HERDD_ prefix ("event" -> HERDD_EVENT); values are passed as binary-safe iovecs.
enum JournalEncoding {
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    static func fieldName(_ key: String) -> String {
        var out = "HERDD_"
        for c in key.uppercased().unicodeScalars {
            let ok = (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "_"
            out.unicodeScalars.append(ok ? c : "_")
        }
        return out
    }

    static func fields(message: String, priority: Int, role: String, workerID: Int?, metadata: Logger.Metadata) -> [String] {
        var f = ["MESSAGE=\(message)", "PRIORITY=\(priority)", "SYSLOG_IDENTIFIER=\(ProgramName.current)", "HERDD_ROLE=\(role)",
                 "HERDD_PID=\(Sys.processID())"]
        if let workerID, metadata["worker_id"] == nil { f.append("HERDD_WORKER_ID=\(workerID)") }
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            let name = fieldName(k)
            if name == "HERDD_ROLE" || name == "HERDD_PID" { continue } // set above, one value each
            f.append("\(name)=\(v)")
        }
        return f
    }

    static func send(_ fields: [String]) {
        // A failing journal has nowhere to be reported (it is where reports go).
        try? Sys.journalSend(fields)
    }
}
