/// Keys and values of every position seen so far, per layer, laid out [kvHeads, capacity, D] so
/// that one kv head's keys are a contiguous matrix for the attention matmuls.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let headDim: Int
    public let kvHeads: [Int]
    /// Positions filled (the same for every layer between forward calls).
    public internal(set) var length = 0
    private let keys: [UnsafeMutablePointer<Float>]
    private let values: [UnsafeMutablePointer<Float>]

    public init(kvHeads: [Int], headDim: Int, capacity: Int) {
        self.capacity = capacity
        self.headDim = headDim
        self.kvHeads = kvHeads
        keys = kvHeads.map { Self.allocate($0 * capacity * headDim) }
        values = kvHeads.map { Self.allocate($0 * capacity * headDim) }
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

    public static func byteCount(kvHeads: [Int], headDim: Int, capacity: Int) -> Int {
        kvHeads.reduce(0, +) * capacity * headDim * 4 * 2
    }

    public var byteCount: Int { Self.byteCount(kvHeads: kvHeads, headDim: headDim, capacity: capacity) }

    /// Keys of `layer`'s kv head `head`: (capacity, D).
    @inline(__always) func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { keys[layer] + head * capacity * headDim }
    @inline(__always) func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { values[layer] + head * capacity * headDim }

    /// Copies `tokens` rows of k and v (T, kvHeads·D) into positions `position…`.
    func store(layer: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, tokens: Int, position: Int) {
        let d = headDim, heads = kvHeads[layer]
        for t in 0..<tokens {
            for h in 0..<heads {
                (keys(layer: layer, head: h) + (position + t) * d).update(from: k + t * heads * d + h * d, count: d)
                (values(layer: layer, head: h) + (position + t) * d).update(from: v + t * heads * d + h * d, count: d)
            }
        }
    }

    public func reset() { length = 0 }

    /// Forgets positions from `newLength` on (for reusing a prompt prefix).
    public func truncate(to newLength: Int) { length = min(length, max(0, newLength)) }
}
