import COpenBLAS

/// A linear with the LoRA pair on it, if any: y (+)= x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ, forward and
/// backward side by side. Inference and training use the same wrapper; training keeps u for the
/// backward and may drop out the pair's input. One row goes through sgemv, several through sgemm.
/// Shapes: x (T, in); W (out, in); A (r, in); B (out, r); y (T, out); u = drop(x)·Aᵀ (T, r).
struct LoRALinear {
    let weight: Weight
    let pair: LoRAPair?
    let scaling: Float
    var dropout: LoRADropout?

    /// What a linear works in besides its input and output: the scratch non-fp32 weights are
    /// widened into; for training a pair, du (T, r) and drop(x) (T, in); how the base weight's
    /// products of several rows are computed.
    struct Workspace {
        let scratch: UnsafeMutablePointer<Float>
        let scratchCount: Int
        var du: UnsafeMutablePointer<Float>? = nil
        var dropped: UnsafeMutablePointer<Float>? = nil
        var matmul = MatmulDType.f32
    }

    /// `u`: where x·Aᵀ goes (the pair is skipped without it).
    func forward(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                 u: UnsafeMutablePointer<Float>?, workspace: Workspace) {
        Linear.forward(x, rows: rows, weight: weight, out: out, accumulate: accumulate,
                       scratch: workspace.scratch, scratchCount: workspace.scratchCount, matmul: workspace.matmul)
        addPair(x, rows: rows, out: out, u: u, workspace: workspace)
    }

    /// out += s·(drop(x)·Aᵀ)·Bᵀ, the pair's share on top of the base product already in `out`.
    func addPair(_ x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>?,
                 workspace: Workspace) {
        guard let pair, let u else { return }
        project(x, rows: rows, u: u, workspace: workspace)
        let r = pair.a.rows, n = weight.rows, b = pair.b.float32!
        if rows == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(r), scaling, b, Int32(r), u, 1, 1, out, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(n), Int32(r),
                        scaling, u, Int32(r), b, Int32(r), 1, out, Int32(n))
        }
    }

    /// u = drop(x)·Aᵀ.
    func project(_ x: UnsafePointer<Float>, rows: Int, u: UnsafeMutablePointer<Float>, workspace: Workspace) {
        guard let pair else { return }
        let r = pair.a.rows, k = weight.cols, a = pair.a.float32!
        var input = x
        if let dropout, let dropped = workspace.dropped {
            dropout.forward(x, count: rows * k, out: dropped)
            input = UnsafePointer(dropped)
        }
        if rows == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r), Int32(k), 1, a, Int32(k), input, 1, 0, u, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(r), Int32(k),
                        1, input, Int32(k), a, Int32(k), 0, u, Int32(r))
        }
    }

    /// Whether `backward` reads x: for the pair's A gradient, or for W's own gradient.
    func backwardReadsInput(_ gradients: GradientBuffers) -> Bool {
        pair != nil || gradients.gradient(for: weight) != nil
    }

    /// dx += dy·W + s·drop'(dy·B·A) (skipped when `dx` is nil: nothing below needs it); W's
    /// gradient (`weightGradient`, else `gradients`' own), A's and B's where `gradients` has them:
    /// dB += s·dyᵀ·u, du = s·dy·B, dA += duᵀ·drop(x).
    func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, u: UnsafePointer<Float>?, dx: UnsafeMutablePointer<Float>?,
                  rows t: Int, gradients: GradientBuffers, weightGradient: UnsafeMutablePointer<Float>? = nil, workspace: Workspace) {
        let inFeatures = weight.cols, outFeatures = weight.rows
        if let dx {
            Linear.backwardInput(dy: dy, rows: t, weight: weight, dx: dx, accumulate: true,
                                 scratch: workspace.scratch, scratchCount: workspace.scratchCount, matmul: workspace.matmul)
        }
        if let gradientW = weightGradient ?? gradients.gradient(for: weight) {
            Linear.backwardWeight(dy: dy, x: x, rows: t, outFeatures: outFeatures, inFeatures: inFeatures, grad: gradientW)
        }
        guard let pair, let u, let du = workspace.du else { return }
        let r = pair.a.rows, a = pair.a.float32!
        if let gradientB = gradients.gradient(for: pair.b) {
            Linear.backwardWeight(dy: dy, x: u, rows: t, outFeatures: outFeatures, inFeatures: r, grad: gradientB, scale: scaling)
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(r), Int32(outFeatures),
                    scaling, dy, Int32(outFeatures), pair.b.float32!, Int32(r), 0, du, Int32(r))
        var input = x
        if let dropout, let dropped = workspace.dropped {
            dropout.forward(x, count: t * inFeatures, out: dropped)
            input = UnsafePointer(dropped)
        }
        if let gradientA = gradients.gradient(for: pair.a) {
            Linear.backwardWeight(dy: du, x: input, rows: t, outFeatures: r, inFeatures: inFeatures, grad: gradientA)
        }
        guard let dx else { return }
        if let dropout, let dropped = workspace.dropped {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(inFeatures), Int32(r),
                        1, du, Int32(r), a, Int32(inFeatures), 0, dropped, Int32(inFeatures))
            dropout.backward(dropped, count: t * inFeatures, dx: dx)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(inFeatures), Int32(r),
                        1, du, Int32(r), a, Int32(inFeatures), 1, dx, Int32(inFeatures))
        }
    }
}
