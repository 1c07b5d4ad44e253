/// The memory a placed step runs in: one region of `placement.peak` bytes from a jemalloc arena
/// that nothing else uses, with every buffer at the region's start plus its planned offset. The
/// runtime walks the program's ops with these pointers and never calls malloc in the step; the
/// arena's own counters (`JemallocArena.allocatedBytes`) show that the region is all it holds.
///
/// ```swift
/// let placement = try BestFitPlacement(program)
/// let memory = try PlanArena(placement)
/// let scores = memory.pointer(for: scoresIndex).bindMemory(to: Float.self, capacity: count)
/// ```
public final class PlanArena: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// The bytes the plan needed.
        public var bytes = 0
    }

    /// The arena plans allocate from unless given another: created once per process.
    public static let sharedArena: JemallocArena? = try? JemallocArena()

    public let placement: BestFitPlacement
    public let arena: JemallocArena
    /// The region's start, aligned to at least `placement.alignment` and 64.
    public let base: UnsafeMutableRawPointer
    /// What jemalloc reserved for the region (its size class, at least the peak).
    public let usableSize: Int

    /// Allocates the region; fails when jemalloc cannot provide `placement.peak` bytes.
    public init(_ placement: BestFitPlacement, arena: JemallocArena? = nil) throws {
        guard let arena = arena ?? PlanArena.sharedArena else {
            throw Failure(description: "no jemalloc arena for plans could be created", bytes: placement.peak)
        }
        let alignment = max(placement.alignment, 64)
        // An empty plan still gets a (minimal) region, so every pointer is valid.
        guard let base = arena.allocate(bytes: max(placement.peak, alignment), alignment: alignment) else {
            throw Failure(description: "jemalloc could not allocate the plan's \(placement.peak) bytes (alignment \(alignment))", bytes: placement.peak)
        }
        self.placement = placement
        self.arena = arena
        self.base = base
        self.usableSize = arena.usableSize(base)
    }

    deinit {
        arena.deallocate(base)
    }

    /// Where buffer `index` (of the placed program) lives.
    public func pointer(for buffer: Int) -> UnsafeMutableRawPointer {
        base + placement.offsets[buffer]
    }

    /// A debug check, not for the hot path: the placement verifies (no two buffers live at the
    /// same op share a byte, all aligned and under the peak) and every buffer lies in the region.
    public func checkOverlap() throws {
        try placement.verify()
        for p in placement.placements where p.offset < 0 || p.offset + p.size > usableSize {
            throw Failure(description: "\"\(p.name)\" at [\(p.offset), \(p.offset + p.size)) leaves the region of \(usableSize) bytes")
        }
    }
}
