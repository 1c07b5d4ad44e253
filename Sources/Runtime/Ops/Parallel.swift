import Dispatch

/// Splits elementwise work across the compute threads (`initialize`'s `threads`). The matmuls
/// already use every core through OpenBLAS; without this, the norms, RoPE, softmax and SwiGLU
/// between them would run on one core while the others wait.
public enum Parallel {
    /// Set with OpenBLAS's thread count.
    public static var threads = 1

    /// Calls `body` on consecutive ranges covering 0..<count, concurrently when the work is big
    /// enough to pay for the handoff (`count · costPerItem` ≥ about 32k element operations).
    @inline(__always)
    public static func ranges(_ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = min(threads, count, max(1, count * costPerItem / 32_768))
        guard parts > 1 else { return body(0..<count) }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            body((count * part / parts)..<(count * (part + 1) / parts))
        }
    }
}
