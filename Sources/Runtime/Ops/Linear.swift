import CKernels
import COpenBLAS

/// y = x·Wᵀ for W [out, in] in any weight dtype, and its two gradients. Several rows go through
/// sgemm, one row through sgemv (a one-row sgemm is several times slower on OpenBLAS); one row
/// against a bf16, f16 or NF4 weight reads the weight where it lies (`lk_gemv16`, `lk_gemv_nf4`),
/// since decode is bound by the bytes read, and so does an fp32 one where `lk_gemv32` has a
/// kernel for the CPU. Otherwise non-fp32 weights are widened block by block into `scratch`
/// (`scratchCount` floats), never all at once. With `matmul` bf16 (and AMX on the CPU), products
/// of several rows go through `lk_gemm_bf16` instead of sgemm: bf16 and fp32 weights as they lie.
/// Shapes: x (T, in) with rows `xStride` apart; out (T, out) with rows `outStride` apart.
public enum Linear {
    public static func forward(_ x: UnsafePointer<Float>, rows: Int, weight: Weight, out: UnsafeMutablePointer<Float>,
                               xStride: Int? = nil, outStride: Int? = nil, accumulate: Bool = false,
                               scratch: UnsafeMutablePointer<Float>, scratchCount: Int, matmul: MatmulDType = .f32) {
        let k = weight.cols, n = weight.rows
        let lda = xStride ?? k, ldc = outStride ?? n
        let beta: Float = accumulate ? 1 : 0
        if rows == 1, readsInPlace(weight) {
            Parallel.ranges(n, costPerItem: k) { oneRow(x, weight: weight, out: out, rows: $0, beta: beta) }
            return
        }
        let bf16 = rows > 1 && matmul.effective == .bf16
        if bf16, let (w, isBF16) = inPlace16(weight),
           lk_gemm_bf16(x, lda, rows, k, w, isBF16, k, 1, n, out, ldc, beta, Int32(Parallel.threads)) == 0 {
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
                gemm(bf16: bf16, x, lda: lda, m: rows, depth: k, w, ldw: k, transposed: true, n: count, out + start, ldc: ldc, beta: beta)
            }
            start += count
        }
    }

    /// c (m, n) = a (m, depth) · op(w) + beta·c for an fp32 w, op(w) = wᵀ for w (n, depth) when
    /// `transposed`, else w (depth, n): on AMX in bf16 when `bf16` and `lk_gemm_bf16` runs, else
    /// through OpenBLAS's sgemm.
    private static func gemm(bf16: Bool, _ a: UnsafePointer<Float>, lda: Int, m: Int, depth: Int, _ w: UnsafePointer<Float>, ldw: Int,
                             transposed: Bool, n: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int, beta: Float) {
        if bf16, lk_gemm_bf16(a, lda, m, depth, w, 0, ldw, transposed ? 1 : 0, n, c, ldc, beta, Int32(Parallel.threads)) == 0 { return }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(depth),
                    1, a, Int32(lda), w, Int32(ldw), beta, c, Int32(ldc))
    }

    /// The weight as `lk_gemm_bf16` reads it in place: bf16 (even address) or fp32 storage, and
    /// whether it is bf16. nil for f16 and NF4, which are widened block by block first.
    private static func inPlace16(_ weight: Weight) -> (UnsafeRawPointer, Int32)? {
        if let w = weight.float32 { return (UnsafeRawPointer(w), 0) }
        if weight.dtype == .bf16, Int(bitPattern: weight.storage) % 2 == 0 { return (UnsafeRawPointer(weight.storage), 1) }
        return nil
    }

    /// Whether a one-row product against `weight` goes through our kernels (16-bit, NF4, and fp32
    /// where `lk_gemv32` has one for the CPU) rather than through OpenBLAS.
    static func readsInPlace(_ weight: Weight) -> Bool {
        if weight.float32 != nil { return hasFloat32Kernel }
        return weight.nf4 != nil || (weight.dtype == .bf16 || weight.dtype == .f16) && Int(bitPattern: weight.storage) % 2 == 0
    }

    /// fp32 rows go through `lk_gemv32` where it has a kernel for the CPU, on the compute threads'
    /// pool: OpenBLAS's sgemv woke its own threads for each product.
    private static let hasFloat32Kernel = lk_gemv32_available() != 0

    /// Rows `range` of out = W·x (+ beta·out) for one row x, W read where it lies.
    static func oneRow(_ x: UnsafePointer<Float>, weight: Weight, out: UnsafeMutablePointer<Float>, rows range: Range<Int>, beta: Float) {
        let k = weight.cols
        if let nf4 = weight.nf4 { return nf4.product(x, k: k, rows: range, into: out, beta: beta) }
        if let w = weight.float32 { return lk_gemv32(w, x, out, k, range.lowerBound, range.upperBound, beta) }
        let w = weight.storage.assumingMemoryBound(to: UInt16.self), bf16: Int32 = weight.dtype == .bf16 ? 1 : 0
        lk_gemv16(w, bf16, x, out, k, range.lowerBound, range.upperBound, beta)
    }

    /// out_i = W_i·x for two or three weights on one input row, each read where it lies, in one
    /// parallel region: decode's q, k, v and gate, up wake the compute threads once, not per weight.
    static func oneRow(_ x: UnsafePointer<Float>, _ a: (Weight, UnsafeMutablePointer<Float>), _ b: (Weight, UnsafeMutablePointer<Float>),
                       _ c: (Weight, UnsafeMutablePointer<Float>)? = nil) {
        let na = a.0.rows, nb = b.0.rows, nc = c?.0.rows ?? 0
        Parallel.ranges(na + nb + nc, costPerItem: a.0.cols) { range in
            func part(_ job: (Weight, UnsafeMutablePointer<Float>), from offset: Int, count: Int) {
                let lower = max(range.lowerBound, offset), upper = min(range.upperBound, offset + count)
                if lower < upper { oneRow(x, weight: job.0, out: job.1, rows: (lower - offset)..<(upper - offset), beta: 0) }
            }
            part(a, from: 0, count: na)
            part(b, from: na, count: nb)
            if let c { part(c, from: na + nb, count: nc) }
        }
    }

    /// dx (+)= dy·W. Shapes: dy (T, out); dx (T, in).
    public static func backwardInput(dy: UnsafePointer<Float>, rows: Int, weight: Weight, dx: UnsafeMutablePointer<Float>,
                                     accumulate: Bool, scratch: UnsafeMutablePointer<Float>, scratchCount: Int, matmul: MatmulDType = .f32) {
        let n = weight.rows, k = weight.cols
        let bf16 = rows > 1 && matmul.effective == .bf16
        if bf16, let (w, isBF16) = inPlace16(weight),
           lk_gemm_bf16(dy, n, rows, n, w, isBF16, k, 0, k, dx, k, accumulate ? 1 : 0, Int32(Parallel.threads)) == 0 {
            return
        }
        let blockRows = weight.float32 != nil ? n : max(1, min(n, scratchCount / k))
        var start = 0
        var first = !accumulate
        while start < n {
            let count = min(blockRows, n - start)
            let w = weight.rows(start..<(start + count), scratch: scratch)
            // dx += dy[:, block] · W[block, :]
            gemm(bf16: bf16, dy + start, lda: n, m: rows, depth: count, w, ldw: k, transposed: false, n: k, dx, ldc: k,
                 beta: first ? 0 : 1)
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
