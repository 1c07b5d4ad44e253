import Foundation

/// Opening a file the runtime reads (weights, configs, tokenizers) only when it is a regular file:
/// opening a FIFO for reading waits for a writer, and a device can stream forever, so a path that
/// is anything else is a FormatError before it is opened, never a hang.
public enum RegularFile {
    /// An open descriptor (the caller closes it) and the file's size. Stat first; then open
    /// non-blocking in case a FIFO was swapped in after the stat, and check the descriptor again.
    public static func open(_ url: URL, kind: String = "file") throws -> (fd: Int32, size: Int) {
        let file = url.lastPathComponent
        var status = stat()
        guard stat(url.path, &status) == 0 else {
            throw FormatError(file: file, "cannot read \(url.path): \(String(cString: strerror(errno)))")
        }
        try requireRegular(status, file: file, kind: kind)
        let fd = Foundation.open(url.path, O_RDONLY | O_NONBLOCK)
        guard fd >= 0 else { throw FormatError(file: file, "cannot open: \(String(cString: strerror(errno)))") }
        guard fstat(fd, &status) == 0 else {
            close(fd)
            throw FormatError(file: file, "cannot stat: \(String(cString: strerror(errno)))")
        }
        do { try requireRegular(status, file: file, kind: kind) } catch { close(fd); throw error }
        return (fd, Int(status.st_size))
    }

    /// The whole contents of a small regular file (a config, a tokenizer), at most `limit` bytes.
    public static func contents(_ url: URL, limit: Int = 1 << 30) throws -> Data {
        let (fd, size) = try open(url)
        defer { close(fd) }
        guard size <= limit else {
            throw FormatError(file: url.lastPathComponent, "is \(size) bytes, more than the \(limit) this file may have")
        }
        var data = Data(count: size)
        let read = data.withUnsafeMutableBytes { buffer -> Int in
            var done = 0
            while done < size {
                let n = Foundation.read(fd, buffer.baseAddress! + done, size - done)
                if n <= 0 { return n < 0 ? -1 : done }
                done += n
            }
            return done
        }
        guard read == size else {
            throw FormatError(file: url.lastPathComponent, "cannot read \(url.path): \(String(cString: strerror(errno)))")
        }
        return data
    }

    static func requireRegular(_ status: stat, file: String, kind: String) throws {
        let type = status.st_mode & S_IFMT
        guard type != S_IFREG else { return }
        let name = type == S_IFDIR ? "a directory" : FileType.describe(type)
        throw FormatError(file: file, "is \(name), not a regular \(kind)")
    }
}
