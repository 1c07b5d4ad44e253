import CJemalloc

/// A jemalloc arena of our own (`arenas.create`), so planned regions neither share extents with
/// the rest of the process nor pass through a thread cache: what the arena holds is exactly what
/// the plans asked for, and jemalloc's per-arena counters can confirm it.
public final class JemallocArena: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// jemalloc's arena index.
    public let index: UInt32

    public init() throws {
        var index: UInt32 = 0
        var size = MemoryLayout<UInt32>.size
        let status = mallctl("arenas.create", &index, &size, nil, 0)
        guard status == 0 else { throw Failure(description: "jemalloc arenas.create failed with error \(status)") }
        self.index = index
    }

    /// `bytes` aligned to `alignment` (a power of two), or nil when jemalloc cannot provide them.
    public func allocate(bytes: Int, alignment: Int = 64) -> UnsafeMutableRawPointer? {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        guard bytes > 0 else { return nil }
        return mallocx(bytes, loram_mallocx_flags(alignment, index))
    }

    public func deallocate(_ pointer: UnsafeMutableRawPointer) {
        dallocx(pointer, loram_dallocx_flags(index))
    }

    /// The usable size jemalloc reserved for `pointer` (at least what was asked).
    public func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
        sallocx(pointer, 0)
    }

    /// Bytes live in this arena now, by jemalloc's own per-arena counters. Nothing else allocates
    /// here, so this is exactly what the plans hold.
    public var allocatedBytes: Int? {
        Jemalloc.refreshStatistics()
        var total = 0
        for sizeClass in ["small", "large"] {
            var bytes = 0
            var size = MemoryLayout<Int>.size
            guard mallctl("stats.arenas.\(index).\(sizeClass).allocated", &bytes, &size, nil, 0) == 0 else { return nil }
            total += bytes
        }
        return total
    }
}

/// Reads of jemalloc's global state through `mallctl`.
public enum Jemalloc {
    /// jemalloc's version string, e.g. "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c".
    public static var version: String? {
        var pointer: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &pointer, &size, nil, 0) == 0, let pointer else { return nil }
        return String(cString: pointer)
    }

    /// jemalloc caches its statistics; advancing the epoch refreshes them.
    static func refreshStatistics() {
        var epochIn: UInt64 = 1
        var epochOut: UInt64 = 0
        var epochSize = MemoryLayout<UInt64>.size
        _ = mallctl("epoch", &epochOut, &epochSize, &epochIn, MemoryLayout<UInt64>.size)
    }

    /// Bytes the calling thread has allocated since it started (`thread.allocated`, cumulative):
    /// the difference across a piece of work is what that work allocated, freed or not.
    public static var threadAllocatedBytes: UInt64? {
        var value: UInt64 = 0
        var size = MemoryLayout<UInt64>.size
        guard mallctl("thread.allocated", &value, &size, nil, 0) == 0 else { return nil }
        return value
    }

    /// Bytes allocated by the application across the process (`stats.allocated`), refreshed first.
    public static var allocatedBytes: Int? {
        refreshStatistics()
        var allocated = 0
        var size = MemoryLayout<Int>.size
        guard mallctl("stats.allocated", &allocated, &size, nil, 0) == 0 else { return nil }
        return allocated
    }
}
