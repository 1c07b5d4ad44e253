import Foundation

/// The file-system steps durable outputs are made of, each failing with FileWriteError: creating
/// folders (and undoing that), syncing files and folders to the disk, and putting a finished
/// folder in place of an older one.
public enum DurableFileSystem {
    /// Creates `url` and any missing parents (mode 0755); returns the folders it created, outermost
    /// first, so a failed save can remove them again.
    @discardableResult
    public static func makeDirectories(_ url: URL) throws -> [URL] {
        var missing: [URL] = []
        var current = url.standardizedFileURL
        var status = stat()
        while current.path != "/" && stat(current.path, &status) != 0 {
            missing.append(current)
            current = current.deletingLastPathComponent()
        }
        var created: [URL] = []
        for folder in missing.reversed() {
            if mkdir(folder.path, 0o755) != 0 {
                let failure = FileWriteError.last("create folder", folder.path)
                // Made by someone else meanwhile: fine if it is a folder.
                if failure.code == EEXIST, stat(folder.path, &status) == 0, status.st_mode & S_IFMT == S_IFDIR { continue }
                removeEmpty(created)
                throw failure
            }
            created.append(folder)
        }
        if missing.isEmpty, status.st_mode & S_IFMT != S_IFDIR {
            throw FileWriteError(path: url.path, code: ENOTDIR, operation: "create folder")
        }
        return created
    }

    /// Removes the folders `makeDirectories` created, innermost first, where they are still empty.
    public static func removeEmpty(_ created: [URL]) {
        for folder in created.reversed() { rmdir(folder.path) }
    }

    /// Everything under `url` (files, then each folder after its contents) written to the disk.
    public static func syncTree(_ url: URL) throws {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { throw FileWriteError.last("sync", url.path) }
        if status.st_mode & S_IFMT == S_IFDIR {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] {
                try syncTree(url.appendingPathComponent(name))
            }
            try sync(url, flags: O_RDONLY | O_DIRECTORY)
        } else if status.st_mode & S_IFMT == S_IFREG {
            try sync(url, flags: O_RDONLY)
        }
    }

    /// Makes a rename inside `directory` durable. Best effort: some file systems cannot open or
    /// sync a folder, which loses nothing already written.
    public static func syncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    private static func sync(_ url: URL, flags: Int32) throws {
        let fd = open(url.path, flags | O_CLOEXEC)
        guard fd >= 0 else { throw FileWriteError.last("sync", url.path) }
        defer { close(fd) }
        // EINVAL: the file system does not sync this kind of file, nothing to do.
        guard fsync(fd) == 0 || errno == EINVAL else { throw FileWriteError.last("sync", url.path) }
    }

    /// Puts the finished folder `temporary` at `destination`, replacing what is there (an empty
    /// folder or an earlier output, as OutputRule allowed). With renameat2's RENAME_EXCHANGE (Linux
    /// 3.15+, most local file systems) the two swap in one step, so `destination` is never
    /// missing. Without it the old output is renamed aside first; a crash in the moment between
    /// the two renames leaves `destination` missing and the old output under a temporary name,
    /// both complete (train/resume of the parent folder still finds the newer checkpoints).
    public static func install(_ temporary: URL, at destination: URL) throws {
        defer { syncDirectory(destination.deletingLastPathComponent()) }
        if rename(temporary.path, destination.path) == 0 { return }
        let failure = FileWriteError.last("rename into", destination.path)
        guard failure.code == EEXIST || failure.code == ENOTEMPTY else { throw failure }
        if exchange(temporary, destination) {
            removeTree(temporary)
            return
        }
        let aside = TemporaryOutput.url(for: destination, tag: ".old")
        guard rename(destination.path, aside.path) == 0 else { throw FileWriteError.last("move aside", destination.path) }
        guard rename(temporary.path, destination.path) == 0 else {
            let failure = FileWriteError.last("rename into", destination.path)
            rename(aside.path, destination.path)
            throw failure
        }
        removeTree(aside)
    }

    /// Removes a file or a folder with everything in it; failures are ignored (a clean-up).
    public static func removeTree(_ url: URL) {
        try? FileManager.default.removeItem(at: url)
    }

    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32

    /// renameat2, looked up at run time: Swift's Glibc module does not import it.
    private static let renameat2: RenameAt2? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: RenameAt2.self)
    }()

    /// Swaps two paths in one step; false where the kernel or file system cannot.
    private static func exchange(_ a: URL, _ b: URL) -> Bool {
        guard let renameat2 else { return false }
        let renameExchange: UInt32 = 2
        return renameat2(AT_FDCWD, a.path, AT_FDCWD, b.path, renameExchange) == 0
    }
}
