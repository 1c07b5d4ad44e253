import Foundation

/// One writer at a time per output path in this process: a second save to the same path waits
/// for the first and then replaces it whole, so concurrent saves never interleave. (Across
/// processes the temporary-then-rename scheme still leaves one whole output, the last renamed.)
public enum OutputLocks {
    private static let condition = NSCondition()
    nonisolated(unsafe) private static var busy: Set<String> = []

    public static func withLock<T>(_ url: URL, _ body: () throws -> T) rethrows -> T {
        let key = url.standardizedFileURL.path
        condition.lock()
        while busy.contains(key) { condition.wait() }
        busy.insert(key)
        condition.unlock()
        defer {
            condition.lock()
            busy.remove(key)
            condition.broadcast()
            condition.unlock()
        }
        return try body()
    }
}
