import Foundation

/// Writes a file under a temporary name beside its destination (TemporaryOutput), syncs it, then
/// renames it into place and syncs the folder, so a reader, or a daemon restarted after a crash,
/// sees the old file or the whole new one, never half of one. One writer per path at a time
/// (OutputLocks); missing parent folders are created, and removed again if the write fails.
/// Failures of the file system are FileWriteError; `rule` says what an existing file may be (never
/// a link: the rename replaces a link planted after the check, not what it points to).
/// (Foundation's `.atomic` option on Linux leaves an empty `TemporaryDirectory.*` in /tmp behind
/// on every write, and neither syncs.)
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL, rule: OutputRule = .anyFile) throws {
        try write(to: url, rule: rule) { try $0.write(data) }
    }

    public static func write(to url: URL, rule: OutputRule = .anyFile, _ body: (FileOutput) throws -> Void) throws {
        let target = url.standardizedFileURL
        try OutputLocks.withLock(target) {
            try rule.check(target)
            let parent = target.deletingLastPathComponent()
            let created = try DurableFileSystem.makeDirectories(parent)
            TemporaryOutput.removeStale(in: parent)
            let temporary = TemporaryOutput.url(for: target)
            let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                let failure = FileWriteError.last("create", target.path)
                DurableFileSystem.removeEmpty(created)
                throw failure
            }
            var isOpen = true
            do {
                try body(FileOutput(fd: fd, path: target.path))
                guard fsync(fd) == 0 else { throw FileWriteError.last("sync", target.path) }
                isOpen = false
                // close can report a delayed write error (NFS, quotas).
                guard close(fd) == 0 else { throw FileWriteError.last("write", target.path) }
                guard rename(temporary.path, target.path) == 0 else { throw FileWriteError.last("rename into", target.path) }
            } catch {
                if isOpen { close(fd) }
                unlink(temporary.path)
                DurableFileSystem.removeEmpty(created)
                throw error
            }
            DurableFileSystem.syncDirectory(parent)
        }
    }
}
