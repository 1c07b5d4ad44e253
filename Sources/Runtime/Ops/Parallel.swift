import CKernels

/// Splits elementwise work across the compute threads (`initialize`'s `threads`). The matmuls
/// already use every core through OpenBLAS; without this, the norms, RoPE, softmax and SwiGLU
/// between them would run on one core while the others wait. The threads are `lk_parallel`'s
/// pool, whose workers spin between regions: decode's regions are tens of microseconds each.
public enum Parallel {
    /// Set with OpenBLAS's thread count.
    public static var threads = 1

    /// Calls `body` on consecutive ranges covering 0..<count, concurrently when the work is big
    /// enough to pay for the handoff (`count · costPerItem` ≥ about 32k element operations).
    @inline(__always)
    public static func ranges(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, count, max(1, count * costPerItem / 32_768))
        guard parts > 1 else { return body(0..<count) }
        withoutActuallyEscaping(body) { body in
            var region = Region(count: count, parts: parts, body: body)
            withUnsafeMutablePointer(to: &region) { pointer in
                lk_parallel(parts, { context, part in
                    let region = context!.assumingMemoryBound(to: Region.self).pointee
                    let part = Int(part)
                    region.body((region.count * part / region.parts)..<(region.count * (part + 1) / region.parts))
                }, pointer)
            }
        }
    }

    private struct Region {
        let count: Int, parts: Int
        let body: (Range<Int>) -> Void
    }
}
