import Foundation

/// An open file being written by AtomicFile: every write is whole (short writes and EINTR are
/// retried) or a FileWriteError naming the destination.
public struct FileOutput {
    let fd: Int32
    /// The destination the bytes are for (errors name it, not the temporary).
    let path: String

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, base + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw n == 0 ? FileWriteError(path: path, code: EIO, operation: "write") : FileWriteError.last("write", path) }
            done += n
        }
    }

    public func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
}
