import CKernels
import COpenBLAS

/// Grouped-query causal self-attention over whole rows of a training batch, keeping the
/// probabilities for the backward (the KV-cache form for inference is `CausalAttention`).
/// Query head h reads kv head h / (H / KV); scores are scaled by 1/√D.
/// Shapes: q, out, dq (B·S, H·D); k, v, dk, dv (B·S, KV·D); probs (B, H, S, S); dScores (S, S).
enum SequenceAttention {
    struct Shape {
        let rows, seqLen, heads, kvHeads, headDim: Int
        var group: Int { heads / kvHeads }
        var scale: Float { 1 / Float(headDim).squareRoot() }
    }

    /// probs = softmax(scale·q·kᵀ) causally; out = probs·v.
    static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, shape: Shape) {
        let s = shape.seqLen, h = shape.heads, kv = shape.kvHeads, d = shape.headDim
        for b in 0..<shape.rows {
            for head in 0..<h {
                let g = head / shape.group
                let qh = q + b * s * h * d + head * d, kh = k + b * s * kv * d + g * d, vh = v + b * s * kv * d + g * d
                let p = probs + (b * h + head) * s * s
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s), Int32(s), Int32(d),
                            shape.scale, qh, Int32(h * d), kh, Int32(kv * d), 0, p, Int32(s))
                lk_softmax_causal(p, s, 0, s, 1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            1, p, Int32(s), vh, Int32(kv * d), 0, out + b * s * h * d + head * d, Int32(h * d))
            }
        }
    }

    /// dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P⊙(dP − rowsum(dP⊙P)); dQ = scale·dS·K; dK += scale·dSᵀ·Q.
    /// GQA heads of a group add into their kv head. Writes dq, dk, dv over what they held.
    static func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                         dv: UnsafeMutablePointer<Float>, dScores: UnsafeMutablePointer<Float>, shape: Shape) {
        let s = shape.seqLen, h = shape.heads, kv = shape.kvHeads, d = shape.headDim, t = shape.rows * s
        dk.update(repeating: 0, count: t * kv * d)
        dv.update(repeating: 0, count: t * kv * d)
        for b in 0..<shape.rows {
            for head in 0..<h {
                let g = head / shape.group
                let qOffset = b * s * h * d + head * d, kvOffset = b * s * kv * d + g * d
                let p = probs + (b * h + head) * s * s
                let dO = dOut + qOffset
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            1, p, Int32(s), dO, Int32(h * d), 1, dv + kvOffset, Int32(kv * d))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(s), Int32(s), Int32(d),
                            1, dO, Int32(h * d), v + kvOffset, Int32(kv * d), 0, dScores, Int32(s))
                lk_softmax_backward_causal(p, dScores, s, 0, s)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            shape.scale, dScores, Int32(s), k + kvOffset, Int32(kv * d), 0, dq + qOffset, Int32(h * d))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(s), Int32(d), Int32(s),
                            shape.scale, dScores, Int32(s), q + qOffset, Int32(h * d), 1, dk + kvOffset, Int32(kv * d))
            }
        }
    }
}
