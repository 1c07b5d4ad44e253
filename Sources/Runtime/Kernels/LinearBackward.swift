import COpenBLAS

/// The two gradients of y = x·Wᵀ, for W [out, in] in any weight dtype (non-fp32 weights are
/// widened block by block into `scratch`, as in the forward).
public enum LinearBackward {
    /// dx (+)= dy·W. Shapes: dy (T, out); dx (T, in).
    public static func input(dy: UnsafePointer<Float>, rows: Int, weight: Weight, dx: UnsafeMutablePointer<Float>,
                             accumulate: Bool, scratch: UnsafeMutablePointer<Float>, scratchCount: Int) {
        let n = weight.rows, k = weight.cols
        let blockRows = weight.float32 != nil ? n : max(1, min(n, scratchCount / k))
        var start = 0
        var first = !accumulate
        while start < n {
            let count = min(blockRows, n - start)
            let w = weight.rows(start..<(start + count), scratch: scratch)
            // dx += dy[:, block] · W[block, :]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(k), Int32(count),
                        1, dy + start, Int32(n), w, Int32(k), first ? 0 : 1, dx, Int32(k))
            first = false
            start += count
        }
    }

    /// grad += scale · dyᵀ·x. Shapes: dy (T, out) with rows `dyStride` apart; x (T, in); grad (out, in).
    public static func weight(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, outFeatures: Int, inFeatures: Int,
                              grad: UnsafeMutablePointer<Float>, scale: Float = 1, dyStride: Int? = nil) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(rows),
                    scale, dy, Int32(dyStride ?? outFeatures), x, Int32(inFeatures), 1, grad, Int32(inFeatures))
    }
}
