import Foundation

/// A write the file system refused: no space, a quota, a read-only mount, no permission, a path
/// that runs through a file, a name too long. The environment's doing, not the request's nor the
/// daemon's; `path` and the OS reason (`errno`, strerror's text) say what a person has to fix.
public struct FileWriteError: Error, CustomStringConvertible, Sendable {
    /// The output the write was for (the destination, never a temporary name).
    public let path: String
    /// The OS error number (ENOSPC, EROFS, EACCES, ...).
    public let code: Int32
    /// What was being done: create, write, sync, rename, create folder.
    public let operation: String

    public init(path: String, code: Int32, operation: String) {
        self.path = path
        self.code = code
        self.operation = operation
    }

    /// The failure `errno` reports now, after `operation` on `path`.
    static func last(_ operation: String, _ path: String) -> FileWriteError {
        FileWriteError(path: path, code: errno, operation: operation)
    }

    /// strerror's text for `code`, e.g. "No space left on device".
    public var reason: String { String(cString: strerror(code)) }

    public var description: String { "cannot \(operation) \(path): \(reason)" }

    /// The same failure named by its final path: a path inside the temporary folder `temporary`
    /// becomes the one inside `destination` (what the client asked for).
    func relocated(from temporary: String, to destination: String) -> FileWriteError {
        guard path.hasPrefix(temporary) else { return self }
        return FileWriteError(path: destination + path.dropFirst(temporary.count), code: code, operation: operation)
    }

    /// A write that went through Foundation (FileManager, Data.write) and failed with a POSIX cause.
    public init?(foundation error: Error) {
        let error = error as NSError
        guard error.domain == NSCocoaErrorDomain, (512..<700).contains(error.code) else { return nil }
        // On Linux the cause is a POSIXError, which `as? NSError` does not match.
        guard let cause = error.userInfo[NSUnderlyingErrorKey] as? Error else { return nil }
        let underlying = cause as NSError
        guard underlying.domain == NSPOSIXErrorDomain else { return nil }
        let path = error.userInfo[NSFilePathErrorKey] as? String ?? (error.userInfo[NSURLErrorKey] as? URL)?.path ?? "?"
        self.init(path: path, code: Int32(underlying.code), operation: "write")
    }
}
