import CKernels
import COpenBLAS

/// y = x·Wᵀ for W [out, in] in any weight dtype, and its two gradients. Several rows go through
/// sgemm, one row through sgemv (a one-row sgemm is several times slower on OpenBLAS); one row
/// against a bf16, f16 or NF4 weight reads the weight where it lies (`lk_gemv16`, `lk_gemv_nf4`),
/// since decode is bound by the bytes read. Otherwise non-fp32 weights are widened block by block into `scratch`
/// (`scratchCount` floats), never all at once.
/// Shapes: x (T, in) with rows `xStride` apart; out (T, out) with rows `outStride` apart.
public enum Linear {
    public static func forward(_ x: UnsafePointer<Float>, rows: Int, weight: Weight, out: UnsafeMutablePointer<Float>,
                               xStride: Int? = nil, outStride: Int? = nil, accumulate: Bool = false,
                               scratch: UnsafeMutablePointer<Float>, scratchCount: Int) {
        let k = weight.cols, n = weight.rows
        let lda = xStride ?? k, ldc = outStride ?? n
        let beta: Float = accumulate ? 1 : 0
        if rows == 1, let nf4 = weight.nf4 {
            Parallel.ranges(n, costPerItem: k) { nf4.product(x, k: k, rows: $0, into: out, beta: beta) }
            return
        }
        if rows == 1, weight.nf4 == nil, weight.dtype == .bf16 || weight.dtype == .f16, Int(bitPattern: weight.storage) % 2 == 0 {
            let w = weight.storage.assumingMemoryBound(to: UInt16.self), bf16: Int32 = weight.dtype == .bf16 ? 1 : 0
            Parallel.ranges(n, costPerItem: k) { lk_gemv16(w, bf16, x, out, k, $0.lowerBound, $0.upperBound, beta) }
            return
        }
        let blockRows = weight.float32 != nil ? n : max(1, min(n, scratchCount / k))
        var start = 0
        while start < n {
            let count = min(blockRows, n - start)
            let w = weight.rows(start..<(start + count), scratch: scratch)
            if rows == 1 {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(count), Int32(k), 1, w, Int32(k), x, 1, beta, out + start, 1)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(count), Int32(k),
                            1, x, Int32(lda), w, Int32(k), beta, out + start, Int32(ldc))
            }
            start += count
        }
    }

    /// dx (+)= dy·W. Shapes: dy (T, out); dx (T, in).
    public static func backwardInput(dy: UnsafePointer<Float>, rows: Int, weight: Weight, dx: UnsafeMutablePointer<Float>,
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
    public static func backwardWeight(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, outFeatures: Int, inFeatures: Int,
                                      grad: UnsafeMutablePointer<Float>, scale: Float = 1, dyStride: Int? = nil) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outFeatures), Int32(inFeatures), Int32(rows),
                    scale, dy, Int32(dyStride ?? outFeatures), x, Int32(inFeatures), 1, grad, Int32(inFeatures))
    }
}
