import HerdLibc
import HerdSys

/// The scoreboard as a file in the runtime directory (`DIR/scoreboard`), where `herdd reload`,
/// `upgrade` and `status` find a master that systemd hides from /proc: renamed into place when
/// the master may be found, removed when it exits (unless a successor replaced it).
extension Scoreboard {
    /// Renames the scoreboard file into place (`DIR/scoreboard`); no-op for a memfd.
    func publishFile() throws {
        guard let p = pendingPublish else { return }
        pendingPublish = nil
        do { try Sys.rename(p.tmp, p.final) } catch {
            removeFile(p.tmp)
            throw error
        }
        self.path = p.final
    }

    /// Old master, after an aborted upgrade: the new master's file that was never renamed into
    /// place (`scoreboard.<pid>`), if it died without removing it.
    func removeUnpublished(ofMaster pid: pid_t) {
        guard let final = path ?? pendingPublish?.final else { return }
        removeFile(final + ".\(pid)")
    }

    /// Removes a scoreboard file we no longer need; ENOENT (already gone) is the usual case for
    /// a new master that removed its own, anything else is not worth more than this comment:
    /// the file is on the runtime tmpfs, which systemd empties when the service stops.
    fileprivate func removeFile(_ path: String) {
        do { try Sys.unlink(path) } catch {}
    }

    /// Master exit: remove the published file if it is still ours (an upgrade may have
    /// replaced it with the new master's).
    func unpublish(masterPID: Int32) {
        if let p = pendingPublish { removeFile(p.tmp); pendingPublish = nil }
        guard let path, let fd = try? Sys.open(path, O_RDONLY | O_CLOEXEC) else { return }
        defer { Sys.close(fd) }
        if let other = try? Scoreboard(attaching: fd, readOnly: true), other.header(.masterPID) == UInt64(masterPID) {
            removeFile(path)
        }
    }

    /// The master pid in the header of the scoreboard file at `path` (read, not mapped: for
    /// polling), or nil if there is none or it is not a herdd scoreboard.
    static func masterPID(publishedAt path: String) -> Int32? {
        guard let fd = try? Sys.open(path, O_RDONLY | O_CLOEXEC) else { return nil }
        defer { Sys.close(fd) }
        var words = [UInt64](repeating: 0, count: HeaderField.masterPID.rawValue + 1)
        let want = words.count * 8
        guard case .done(want) = words.withUnsafeMutableBytes({ Sys.read(fd, $0.baseAddress, want) }),
              words[0] == magic, words[1] == layoutVersion else { return nil }
        return Int32(truncatingIfNeeded: words[HeaderField.masterPID.rawValue])
    }
}
