import Foundation

/// Writes a file under a temporary name beside its destination, then renames it into place, so
/// a reader sees the old file or the whole new one, never half of one. (Foundation's `.atomic`
/// option on Linux leaves an empty `TemporaryDirectory.*` in /tmp behind on every write.)
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data) else {
            throw FormatError(file: url.lastPathComponent, "cannot write \(temporary.path)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw FormatError(file: url.lastPathComponent, "cannot rename into place: \(reason)")
        }
    }
}
