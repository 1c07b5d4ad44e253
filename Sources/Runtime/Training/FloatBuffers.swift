/// Owns a set of fp32 buffers allocated together and freed together: a step's activations,
/// workspaces and gradients are sized once, when the job is created, never per step.
final class FloatBuffers {
    private var owned: [UnsafeMutablePointer<Float>] = []
    private(set) var floatCount = 0

    /// A zeroed buffer of `count` floats.
    func make(_ count: Int) -> UnsafeMutablePointer<Float> {
        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(1, count))
        pointer.initialize(repeating: 0, count: max(1, count))
        owned.append(pointer)
        floatCount += count
        return pointer
    }

    var byteCount: Int { floatCount * 4 }

    deinit { owned.forEach { $0.deallocate() } }
}
