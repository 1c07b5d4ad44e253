import COpenBLAS

/// The low-rank half of a LoRA linear: out += scaling · (x·Aᵀ)·Bᵀ, added to what the base
/// linear already wrote. Two sgemm (sgemv for one row) through a [T, r] workspace.
/// Shapes: x (T, in); A (r, in); B (out, r); out (T, out); workspace (T, r).
public enum LoRALinear {
    public static func forward(_ x: UnsafePointer<Float>, rows: Int, pair: LoRAPair, scaling: Float,
                               out: UnsafeMutablePointer<Float>, workspace: UnsafeMutablePointer<Float>) {
        let r = pair.a.rows, k = pair.a.cols, n = pair.b.rows
        let a = pair.a.float32!, b = pair.b.float32!
        if rows == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r), Int32(k), 1, a, Int32(k), x, 1, 0, workspace, 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(r), scaling, b, Int32(r), workspace, 1, 1, out, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(r), Int32(k),
                        1, x, Int32(k), a, Int32(k), 0, workspace, Int32(r))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(r),
                        scaling, workspace, Int32(r), b, Int32(r), 1, out, Int32(n))
        }
    }
}
