import Foundation

/// Keys and values of the positions a layer's attention can still see, per layer, laid out
/// [kvHeads, slots, D] so that one kv head's keys are a contiguous matrix for the attention
/// matmuls. A full-attention layer holds every position (slots = capacity); a sliding layer holds
/// its window and a prefill chunk (`ModelShape.kvSlots`): when a chunk would not fit, the keys its
/// first query still sees move to the front and `first(layer:)` says which position slot 0 holds.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let headDim: Int
    public let kvHeads: [Int]
    /// Positions each layer holds at most.
    public let slots: [Int]
    /// Each layer's window (nil: every earlier key).
    let windows: [Int?]
    /// Positions filled (the same for every layer between forward calls).
    public internal(set) var length = 0
    /// The position slot 0 of each layer holds (0 but for a sliding layer past its slots).
    private var firsts: [Int]
    private let keys: [UnsafeMutablePointer<Float>]
    private let values: [UnsafeMutablePointer<Float>]

    /// `slots`: per layer (nil: `capacity` each); `windows`: per layer, for the sliding ones.
    public init(kvHeads: [Int], headDim: Int, capacity: Int, slots: [Int]? = nil, windows: [Int?] = []) {
        self.capacity = capacity
        self.headDim = headDim
        self.kvHeads = kvHeads
        let slots = slots ?? Array(repeating: capacity, count: kvHeads.count)
        self.slots = slots
        self.windows = kvHeads.indices.map { windows.indices.contains($0) ? windows[$0] : nil }
        firsts = Array(repeating: 0, count: kvHeads.count)
        keys = zip(kvHeads, slots).map { Self.allocate($0 * $1 * headDim) }
        values = zip(kvHeads, slots).map { Self.allocate($0 * $1 * headDim) }
    }

    /// On a cache line, so that with D a multiple of 16 every head's rows start on one: decode's
    /// attention reads them 64 bytes at a time, and loads that straddle two lines made it slower
    /// than the AVX2 version it replaced.
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(1, count))
    }

    deinit {
        keys.forEach { UnsafeMutableRawPointer($0).deallocate() }
        values.forEach { UnsafeMutableRawPointer($0).deallocate() }
    }

    public static func byteCount(kvHeads: [Int], headDim: Int, slots: [Int]) -> Int {
        zip(kvHeads, slots).reduce(0) { $0 + $1.0 * $1.1 } * headDim * 4 * 2
    }

    public var byteCount: Int { Self.byteCount(kvHeads: kvHeads, headDim: headDim, slots: slots) }

    /// The position slot 0 of `layer` holds.
    @inline(__always) func first(layer: Int) -> Int { firsts[layer] }
    /// Keys of `layer`'s kv head `head`: (slots, D), slot 0 holding position `first(layer:)`.
    @inline(__always) func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { keys[layer] + head * slots[layer] * headDim }
    @inline(__always) func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { values[layer] + head * slots[layer] * headDim }

    /// Copies `tokens` rows of k and v (T, kvHeads·D) into positions `position…`. A sliding layer
    /// whose slots would overflow first keeps only the keys its window still needs.
    func store(layer: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, tokens: Int, position: Int) {
        let d = headDim, heads = kvHeads[layer], n = slots[layer]
        if position + tokens - firsts[layer] > n {
            let keep = WindowedSoftmax.firstKey(position: position, window: windows[layer])
            precondition(position + tokens - keep <= n, "a chunk past the cache's slots: the session plans chunks that fit")
            let shift = keep - firsts[layer], count = position - keep
            for h in 0..<heads where count > 0 {
                // The kept keys move to the front; the two ranges may overlap.
                memmove(keys(layer: layer, head: h), keys(layer: layer, head: h) + shift * d, count * d * 4)
                memmove(values(layer: layer, head: h), values(layer: layer, head: h) + shift * d, count * d * 4)
            }
            firsts[layer] = keep
        }
        let slot = position - firsts[layer]
        for t in 0..<tokens {
            for h in 0..<heads {
                (keys(layer: layer, head: h) + (slot + t) * d).update(from: k + t * heads * d + h * d, count: d)
                (values(layer: layer, head: h) + (slot + t) * d).update(from: v + t * heads * d + h * d, count: d)
            }
        }
    }

    public func reset() {
        length = 0
        firsts = firsts.map { _ in 0 }
    }

    /// Forgets positions from `newLength` on (for reusing a prompt prefix). A sliding layer that
    /// has moved past keys the next position would need cannot keep the prefix: the cache resets.
    public func truncate(to newLength: Int) {
        let target = min(length, max(0, newLength))
        let keeps = kvHeads.indices.allSatisfy { firsts[$0] <= WindowedSoftmax.firstKey(position: target, window: windows[$0]) }
        if keeps { length = target } else { reset() }
    }
}
