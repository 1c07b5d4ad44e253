/// Byte offsets for every buffer of a `StepProgram` inside one region, so that buffers live at the
/// same op never overlap, and the region's size (the peak) stays close to the lower bound.
///
/// Layout: persistent buffers first, contiguously at the bottom in program order (they are live
/// at every op, so nothing could share their bytes anyway); transient buffers above them, placed
/// by best fit in the "greedy by size" family (TFLite's arena planner, XLA's heap simulator):
/// take buffers one at a time in some order, look at the already placed buffers whose lifetimes
/// overlap this one, and put it in the gap between them that wastes least, or on top when no gap
/// is big enough. Several orders are tried (size descending; lifetime descending, which stacks
/// a training step's kept activations like the step itself does; size × lifetime descending;
/// start order; size descending with seeded random tie-breaks) and the smallest peak kept,
/// stopping early when one reaches the lower bound, which no placement can beat.
///
/// Cost: O(n²) cheap comparisons per order on raw pointers (see `TransientHeap` for why not a
/// conflict graph); 2,500 buffers take about 10 ms per order in a debug build.
///
/// ```swift
/// let placement = try BestFitPlacement(program)           // 64-byte alignment
/// print(placement.peak, placement.lowerBound, placement.ratio)
/// let offset = placement.offsets[bufferIndex]
/// ```
public struct BestFitPlacement: Sendable {
    /// The order buffers were placed in, for the best result.
    public enum Order: Equatable, Sendable, CustomStringConvertible {
        case sizeDescending, lifetimeDescending, areaDescending, startOrder
        case shuffledTies(seed: UInt64)

        public var description: String {
            switch self {
            case .sizeDescending: return "size descending"
            case .lifetimeDescending: return "lifetime descending"
            case .areaDescending: return "size × lifetime descending"
            case .startOrder: return "start order"
            case .shuffledTies(let seed): return "size descending, ties shuffled (seed \(seed))"
            }
        }
    }

    /// One buffer where it was put.
    public struct Placed: Equatable, Sendable {
        public let index: Int
        public let name: String
        public let kind: BufferKind
        public let persistent: Bool
        /// As asked for.
        public let bytes: Int
        /// Rounded up to the alignment: the bytes it occupies.
        public let size: Int
        public let offset: Int
        public let lifetime: Lifetimes.Interval
    }

    public let program: StepProgram
    public let lifetimes: Lifetimes
    public let alignment: Int
    /// One per buffer, in program order; multiples of `alignment`.
    public let offsets: [Int]
    /// The region's size: the highest `offset + size` of any buffer.
    public let peak: Int
    /// The persistent buffers' bytes at the bottom of the region; transient buffers start here.
    public let persistentBytes: Int
    /// The order that gave `peak`.
    public let order: Order

    /// The most bytes live at one op (aligned sizes): no placement can have a smaller peak.
    public var lowerBound: Int { lifetimes.lowerBound }
    /// peak / lowerBound, 1 when both are 0.
    public var ratio: Double { lowerBound == 0 ? 1 : Double(peak) / Double(lowerBound) }

    /// The buffers live at the op where the most bytes are live (`lifetimes.peakOp`), largest
    /// first: the answer to "why is my peak this big".
    public var liveAtPeak: [Placed] {
        lifetimes.live(at: lifetimes.peakOp).map(placed).sorted { ($0.size, $1.index) > ($1.size, $0.index) }
    }

    /// Bytes by kind at the peak moment, each buffer rounded up to the alignment as it is placed:
    /// they sum to the lower bound exactly.
    public var breakdownAtPeak: [BufferKind: Int] {
        var out: [BufferKind: Int] = Dictionary(uniqueKeysWithValues: BufferKind.allCases.map { ($0, 0) })
        for buffer in liveAtPeak { out[buffer.kind, default: 0] += Lifetimes.round(buffer.bytes, to: alignment) }
        return out
    }

    /// Every buffer, in program order.
    public var placements: [Placed] { program.buffers.indices.map(placed) }

    public func placed(_ index: Int) -> Placed {
        let buffer = program.buffers[index]
        return Placed(index: index, name: buffer.name, kind: buffer.kind, persistent: buffer.persistent, bytes: buffer.bytes,
                      size: Lifetimes.round(buffer.bytes, to: alignment), offset: offsets[index], lifetime: lifetimes.intervals[index])
    }

    /// Validates `program` and places it. `shuffledOrders` seeded random tie-break orders are
    /// tried after the four fixed ones; the first order to reach the lower bound ends the search
    /// unless `stopAtLowerBound` is false (for measuring the slow case).
    public init(_ program: StepProgram, alignment: Int = 64, shuffledOrders: Int = 4, seed: UInt64 = 0x10AD,
                stopAtLowerBound: Bool = true) throws {
        let lifetimes = try Lifetimes(program, alignment: alignment)
        self.program = program
        self.lifetimes = lifetimes
        self.alignment = alignment

        var offsets = [Int](repeating: 0, count: program.buffers.count)
        var persistentBytes = 0
        var transient = [Int]()
        for (b, buffer) in program.buffers.enumerated() {
            if buffer.persistent {
                offsets[b] = persistentBytes
                persistentBytes += Lifetimes.round(buffer.bytes, to: alignment)
            } else {
                transient.append(b)
            }
        }
        self.persistentBytes = persistentBytes

        let heap = TransientHeap(transient.map { b in
            (Lifetimes.round(program.buffers[b].bytes, to: alignment), lifetimes.intervals[b])
        })
        let target = lifetimes.lowerBound - persistentBytes
        var best: (peak: Int, offsets: [Int], order: Order)?
        var orders: [Order] = [.sizeDescending, .lifetimeDescending, .areaDescending, .startOrder]
        var random = SplitMix64(seed: seed)
        for _ in 0..<shuffledOrders { orders.append(.shuffledTies(seed: random.next())) }
        for order in orders {
            let (peak, local) = heap.place(in: heap.sequence(order))
            if best == nil || peak < best!.peak { best = (peak, local, order) }
            if stopAtLowerBound && peak <= target { break }
        }
        let chosen = best ?? (0, [], .sizeDescending)
        for (local, b) in transient.enumerated() { offsets[b] = persistentBytes + chosen.offsets[local] }
        self.offsets = offsets
        self.peak = persistentBytes + chosen.peak
        self.order = chosen.order
    }

    /// Why a placement is unsafe; `verify()` throws it.
    public struct VerificationError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Checks the placement's promises from scratch: offsets are aligned and non-negative, every
    /// buffer ends at or below the peak, and no two buffers live at the same op share a byte.
    public func verify() throws {
        let all = placements
        for p in all {
            if p.offset < 0 || p.offset % alignment != 0 {
                throw VerificationError(description: "\"\(p.name)\" is at offset \(p.offset), not a non-negative multiple of \(alignment)")
            }
            if p.offset + p.size > peak {
                throw VerificationError(description: "\"\(p.name)\" ends at \(p.offset + p.size), above the peak \(peak)")
            }
        }
        // Sweep in start order; `active` holds the buffers whose lifetimes reach the current start.
        var active = [Placed]()
        for p in all.filter({ $0.size > 0 }).sorted(by: { ($0.lifetime.start, $0.index) < ($1.lifetime.start, $1.index) }) {
            active.removeAll { $0.lifetime.end < p.lifetime.start }
            for q in active where q.offset < p.offset + p.size && p.offset < q.offset + q.size {
                throw VerificationError(description: "\"\(q.name)\" [\(q.offset), \(q.offset + q.size)) and \"\(p.name)\" "
                    + "[\(p.offset), \(p.offset + p.size)) overlap in memory while both live at op \(p.lifetime.start)")
            }
            active.append(p)
        }
    }
}

/// The transient buffers as sizes and lifetimes, and best fit for one order at a time.
///
/// Placed buffers are kept sorted by offset; a new buffer scans them, skipping those whose
/// lifetimes miss its own, and takes the gap between the rest that wastes least. That is O(n²)
/// cheap comparisons per order. A conflict graph built by a sweep over the intervals sorted by
/// start (O(overlapping pairs)) was tried first and measured slower: a training step keeps every
/// layer's activations live across the forward/backward turn, so nearly all pairs overlap
/// (1.1 M of 1.6 M for 2,500 buffers) and each buffer then had to sort its placed neighbours.
/// The loops use raw pointers and `while` because this runs in debug builds too, where
/// bounds-checked subscripts and iterators cost several times the comparisons themselves.
final class TransientHeap {
    let count: Int
    private let size: UnsafeMutablePointer<Int>
    private let start: UnsafeMutablePointer<Int>
    private let end: UnsafeMutablePointer<Int>

    init(_ buffers: [(size: Int, interval: Lifetimes.Interval)]) {
        count = buffers.count
        size = .allocate(capacity: max(count, 1))
        start = .allocate(capacity: max(count, 1))
        end = .allocate(capacity: max(count, 1))
        for (i, buffer) in buffers.enumerated() {
            size[i] = buffer.size
            start[i] = buffer.interval.start
            end[i] = buffer.interval.end
        }
    }

    deinit {
        size.deallocate()
        start.deallocate()
        end.deallocate()
    }

    func sequence(_ order: BestFitPlacement.Order) -> [Int] {
        let size = self.size, start = self.start, end = self.end
        switch order {
        case .sizeDescending:
            return (0..<count).sorted { (size[$0], -start[$0], -$0) > (size[$1], -start[$1], -$1) }
        case .lifetimeDescending:
            return (0..<count).sorted { (end[$0] - start[$0], size[$0], -$0) > (end[$1] - start[$1], size[$1], -$1) }
        case .areaDescending:
            // Full width: size × lifetime may pass Int for sizes near the plan limit.
            func area(_ i: Int) -> (Int, UInt) { let p = size[i].multipliedFullWidth(by: end[i] - start[i] + 1); return (p.high, p.low) }
            return (0..<count).sorted { a, b in
                let x = area(a), y = area(b)
                return (x.0, x.1, -a) > (y.0, y.1, -b)
            }
        case .startOrder:
            return (0..<count).sorted { (start[$0], -size[$0], $0) < (start[$1], -size[$1], $1) }
        case .shuffledTies(let seed):
            var random = SplitMix64(seed: seed)
            let keys = (0..<count).map { _ in random.next() }
            return (0..<count).sorted { (size[$0], keys[$0]) > (size[$1], keys[$1]) }
        }
    }

    /// Places buffers in `sequence`; returns the peak and one offset per buffer.
    func place(in sequence: [Int]) -> (peak: Int, offsets: [Int]) {
        let n = count
        guard n > 0 else { return (0, []) }
        let size = self.size, start = self.start, end = self.end
        let offset = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let byOffset = UnsafeMutablePointer<Int>.allocate(capacity: n)
        let order = UnsafeMutablePointer<Int>.allocate(capacity: n)
        defer {
            offset.deallocate()
            byOffset.deallocate()
            order.deallocate()
        }
        for (i, b) in sequence.enumerated() { order[i] = b }
        var placed = 0, peak = 0, k = 0
        while k < n {
            let b = order[k]
            k += 1
            let need = size[b]
            if need == 0 { offset[b] = 0; continue }
            let s = start[b], e = end[b]
            var top = 0, bestOffset = -1, bestWaste = Int.max
            var i = 0
            while i < placed {
                let c = byOffset[i]
                i += 1
                if start[c] > e || end[c] < s { continue }
                let gap = offset[c] - top
                if gap >= need && gap - need < bestWaste {
                    bestWaste = gap - need
                    bestOffset = top
                }
                let cTop = offset[c] + size[c]
                if cTop > top { top = cTop }
            }
            if bestOffset < 0 { bestOffset = top }
            offset[b] = bestOffset
            if bestOffset + need > peak { peak = bestOffset + need }
            // Insert b into the offset-sorted list (binary search, then one memmove).
            var lo = 0, hi = placed
            while lo < hi {
                let mid = (lo + hi) >> 1
                if offset[byOffset[mid]] <= bestOffset { lo = mid + 1 } else { hi = mid }
            }
            (byOffset + lo + 1).update(from: byOffset + lo, count: placed - lo)
            byOffset[lo] = b
            placed += 1
        }
        return (peak, Array(UnsafeBufferPointer(start: offset, count: n)))
    }
}
