import Foundation

/// Writes a folder of files (a model, an adapter, a training checkpoint) so that it appears
/// complete or not at all: `fill` writes into a hidden temporary folder beside the destination
/// (TemporaryOutput), every file and folder in it is synced, and it is renamed into place,
/// swapping with an earlier output of the same kind (DurableFileSystem.install). A kill at any
/// moment leaves the old output or the new one, plus at worst a temporary that the next save into
/// the same parent folder (or train/resume) removes.
///
/// ```swift
/// try AtomicDirectory.write(to: url, rule: .modelFolder) { folder in
///     try model.save(to: folder)
/// }
/// ```
/// One writer per destination at a time (OutputLocks). On any failure the temporary folder and
/// any parent folders created for it are removed; file-system failures are FileWriteError naming
/// the destination's path.
public enum AtomicDirectory {
    public static func write<T>(to destination: URL, rule: OutputRule, _ fill: (URL) throws -> T) throws -> T {
        let target = destination.standardizedFileURL
        return try OutputLocks.withLock(target) {
            try rule.check(target)
            let parent = target.deletingLastPathComponent()
            let created = try DurableFileSystem.makeDirectories(parent)
            TemporaryOutput.removeStale(in: parent)
            let temporary = TemporaryOutput.url(for: target)
            guard mkdir(temporary.path, 0o755) == 0 else {
                let failure = FileWriteError.last("create folder", target.path)
                DurableFileSystem.removeEmpty(created)
                throw failure
            }
            do {
                let result = try fill(temporary)
                try DurableFileSystem.syncTree(temporary)
                try DurableFileSystem.install(temporary, at: target)
                return result
            } catch {
                DurableFileSystem.removeTree(temporary)
                DurableFileSystem.removeEmpty(created)
                if let failure = error as? FileWriteError { throw failure.relocated(from: temporary.path, to: target.path) }
                throw error
            }
        }
    }
}
