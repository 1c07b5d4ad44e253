import CKernels

/// RMSNorm as LLaMA defines it: out = x / sqrt(mean(x²) + eps) · w, per row.
/// Shapes: x, out (T, C); weight (C). `out` may alias `x`.
public enum RMSNorm {
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, cols: Int, eps: Float) {
        Parallel.ranges(rows, costPerItem: cols) { range in
            lk_rmsnorm(x, weight, out, cols, eps, range.lowerBound, range.upperBound)
        }
    }
}
