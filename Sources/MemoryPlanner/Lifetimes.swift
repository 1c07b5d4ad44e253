/// When each buffer of a `StepProgram` is live, as an inclusive interval of op indices, and the
/// least memory any placement of the program can use: the most bytes live at any one op.
///
/// A buffer is live during the op that creates it and during the op that releases it, so a
/// buffer released by op k never shares memory with one created by op k (op k may read the one
/// while writing the other). Persistent buffers span the whole step; a transient buffer spans its
/// creating op to its releasing op, or to the last op that reads it when never released, or to
/// the last op when nothing reads or releases it (it is the step's output).
public struct Lifetimes: Equatable, Sendable {
    /// Inclusive op indices.
    public struct Interval: Equatable, Sendable {
        public var start: Int
        public var end: Int
        public init(start: Int, end: Int) {
            self.start = start
            self.end = end
        }

        public func overlaps(_ other: Interval) -> Bool { start <= other.end && other.start <= end }
        public var length: Int { end - start + 1 }
    }

    /// One per buffer, in the program's buffer order.
    public let intervals: [Interval]
    /// Bytes live at each op (each buffer rounded up to `alignment`); one entry even for a
    /// program without ops, so persistent buffers are counted.
    public let liveBytes: [Int]
    /// The alignment buffer sizes were rounded up to.
    public let alignment: Int
    /// The most bytes live at one op: no placement can use less.
    public let lowerBound: Int
    /// The first op at which `lowerBound` bytes are live.
    public let peakOp: Int

    /// Validates `program`, then derives the intervals and live bytes.
    public init(_ program: StepProgram, alignment: Int = 1) throws {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0, "alignment must be a power of two")
        try program.validate()
        let lastOp = max(program.ops.count - 1, 0)
        var created = [Int](repeating: -1, count: program.buffers.count)
        var released = [Int](repeating: -1, count: program.buffers.count)
        var lastRead = [Int](repeating: -1, count: program.buffers.count)
        for (index, op) in program.ops.enumerated() {
            for b in op.creates { created[b] = index }
            for b in op.reads { lastRead[b] = index }
            for b in op.releases { released[b] = index }
        }
        var intervals = [Interval]()
        intervals.reserveCapacity(program.buffers.count)
        for (b, buffer) in program.buffers.enumerated() {
            if buffer.persistent {
                intervals.append(Interval(start: 0, end: lastOp))
            } else if released[b] >= 0 {
                intervals.append(Interval(start: created[b], end: released[b]))
            } else if lastRead[b] >= 0 {
                intervals.append(Interval(start: created[b], end: max(lastRead[b], created[b])))
            } else {
                intervals.append(Interval(start: created[b], end: lastOp))
            }
        }
        // A difference array: + at the start, - after the end, then a running sum.
        var delta = [Int](repeating: 0, count: lastOp + 2)
        for (b, buffer) in program.buffers.enumerated() {
            let bytes = Lifetimes.round(buffer.bytes, to: alignment)
            delta[intervals[b].start] += bytes
            delta[intervals[b].end + 1] -= bytes
        }
        var live = [Int](repeating: 0, count: lastOp + 1)
        var running = 0, best = 0, bestOp = 0
        for op in 0...lastOp {
            running += delta[op]
            live[op] = running
            if running > best { best = running; bestOp = op }
        }
        self.intervals = intervals
        self.liveBytes = live
        self.alignment = alignment
        self.lowerBound = best
        self.peakOp = bestOp
    }

    /// The buffers live at `op`, in index order.
    public func live(at op: Int) -> [Int] {
        intervals.indices.filter { intervals[$0].start <= op && op <= intervals[$0].end }
    }

    /// `bytes` rounded up to a multiple of `alignment` (a power of two).
    public static func round(_ bytes: Int, to alignment: Int) -> Int {
        (bytes + alignment - 1) & ~(alignment - 1)
    }
}
