import CKernels

/// RMSNorm as LLaMA defines it: out = x / sqrt(mean(x²) + eps) · w, per row, and its backward.
/// Shapes: x, out (T, C); weight (C); inverse (T). `out` may alias `x`.
public enum RMSNorm {
    /// With `inverse`, 1/rms of each row is kept there for the backward (training); without, the
    /// fused kernel normalises in one pass (inference).
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, cols: Int, eps: Float, inverse: UnsafeMutablePointer<Float>? = nil) {
        guard let inverse else {
            Parallel.ranges(rows, costPerItem: cols) { range in
                lk_rmsnorm(x, weight, out, cols, eps, range.lowerBound, range.upperBound)
            }
            return
        }
        Parallel.ranges(rows, costPerItem: 2 * cols) { range in
            inverseRMS(x + range.lowerBound * cols, rows: range.count, cols: cols, eps: eps, out: inverse + range.lowerBound)
            scale(x, weight: weight, inverse: inverse, out: out, cols: cols, rows: range)
        }
    }

    /// out = x · inverse · w per row, from a kept 1/rms: the forward's second half, so the backward
    /// remakes the normed rows it did not keep bit for bit. Shapes as `forward`.
    public static func remake(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, inverse: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.ranges(rows, costPerItem: cols) { range in
            scale(x, weight: weight, inverse: inverse, out: out, cols: cols, rows: range)
        }
    }

    private static func scale(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, inverse: UnsafePointer<Float>,
                              out: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>) {
        for row in rows {
            let r = inverse[row], xr = x + row * cols, o = out + row * cols
            for i in 0..<cols { o[i] = xr[i] * r * weight[i] }
        }
    }

    /// 1 / sqrt(mean(x²) + eps) per row, what the backward needs from the forward.
    /// Shapes: x (T, C); out (T).
    public static func inverseRMS(_ x: UnsafePointer<Float>, rows: Int, cols: Int, eps: Float, out: UnsafeMutablePointer<Float>) {
        for t in 0..<rows {
            let row = x + t * cols
            var sum: Float = 0
            for i in 0..<cols { sum += row[i] * row[i] }
            out[t] = 1 / (sum / Float(cols) + eps).squareRoot()
        }
    }

    /// `backward` writing the input gradient over `dy` (dx = … rather than dx += …): each row's
    /// reduction is taken before the row is written, so nothing is read after it changes. For the
    /// per-head norms of q and k (rows T·H of D), whose gradient has no other use.
    public static func backwardInPlace(_ dy: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                       inverse: UnsafePointer<Float>, weightGrad: UnsafeMutablePointer<Float>?, rows: Int, cols: Int) {
        if let weightGrad {
            Parallel.ranges(cols, costPerItem: rows) { columns in
                for t in 0..<rows {
                    let g = dy + t * cols, xr = x + t * cols, r = inverse[t]
                    for i in columns { weightGrad[i] += g[i] * xr[i] * r }
                }
            }
        }
        Parallel.ranges(rows, costPerItem: cols * 2) { range in
            for t in range {
                let g = dy + t * cols, xr = x + t * cols, r = inverse[t]
                var dot: Float = 0
                for i in 0..<cols { dot += xr[i] * g[i] * weight[i] }
                let coefficient = r * r * r * dot / Float(cols)
                for i in 0..<cols { g[i] = r * g[i] * weight[i] - coefficient * xr[i] }
            }
        }
    }

    /// Backward of y = x·r·w with r = 1/sqrt(mean(x²) + eps):
    /// dx += r·(dy⊙w) − x·r³·mean(x⊙dy⊙w); dw += Σ_t dy⊙x·r (when `weightGrad` is given).
    /// Shapes: dy, x, dx (T, C); w, weightGrad (C); inverse (T).
    public static func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                inverse: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, weightGrad: UnsafeMutablePointer<Float>?,
                                rows: Int, cols: Int) {
        Parallel.ranges(rows, costPerItem: cols * 2) { range in
            lk_rmsnorm_backward(dy, x, weight, inverse, dx, cols, range.lowerBound, range.upperBound)
        }
        if let weightGrad {
            // Split by columns, so each sum runs over the rows in the same order on any thread count.
            Parallel.ranges(cols, costPerItem: rows) { columns in
                for t in 0..<rows {
                    let g = dy + t * cols, xr = x + t * cols, r = inverse[t]
                    for i in columns { weightGrad[i] += g[i] * xr[i] * r }
                }
            }
        }
    }
}
