import CKernels
import COpenBLAS
import Dispatch
import MemoryPlanner

/// Grouped-query causal self-attention over whole rows of a training batch, keeping the
/// probabilities for the backward (the KV-cache form for inference is `CausalAttention`).
/// Query head h reads kv head h / (H / KV); scores are scaled by 1/√D.
/// Shapes: q, out, dq (B·S, H·D); k, v, dk, dv (B·S, KV·D); probs (B, H, P) with P =
/// `TrainingBuffers.probsFloats(seqLen: S)`: per head the causal row blocks, block [r0, r1) as
/// (r1 − r0) rows of r1 keys; dScores (S, S).
enum SequenceAttention {
    struct Shape {
        let rows, seqLen, heads, kvHeads, headDim: Int
        /// Each query sees only this many latest keys (`WindowedSoftmax`); nil: all.
        var window: Int? = nil
        /// Of q·kᵀ; nil: 1/√D.
        var attentionScale: Float? = nil
        var group: Int { heads / kvHeads }
        var scale: Float { attentionScale ?? 1 / Float(headDim).squareRoot() }
    }

    /// Query rows go in blocks of this many: a block reads only the keys its last row can see, so
    /// the masked half of the (S, S) products is mostly never computed.
    static let blockRows = TrainingBuffers.probsBlockRows

    /// Floats of one head's packed probabilities: `TrainingBuffers.probsFloats`, which the planner
    /// checked (it is at most S², and B·H·S² was checked when the step was planned).
    static func headFloats(_ s: Int) -> Int { blocks(s).reduce(0) { $0 + $1.count * $1.upperBound } }

    /// The row blocks of one sequence: [r0, r1), each seeing keys 0..<r1 (lazily: called per row
    /// and head, it allocates nothing).
    static func blocks(_ s: Int) -> LazyMapSequence<StrideTo<Int>, Range<Int>> {
        stride(from: 0, to: s, by: blockRows).lazy.map { $0..<min(s, $0 + blockRows) }
    }

    /// probs = softmax(scale·q·kᵀ) causally (zeros above the diagonal); out = probs·v.
    /// (batch row, head) pairs are independent: they go across the compute threads, each product
    /// on the thread that asks for it.
    static func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        probs: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>, shape: Shape) {
        let s = shape.seqLen, h = shape.heads, kv = shape.kvHeads, d = shape.headDim, perHead = headFloats(s)
        BLAS.oneThreadPerCall {
            Parallel.ranges(shape.rows * h, costPerItem: s * s * d) { items in
                for item in items {
                    let b = item / h, head = item % h, g = head / shape.group
                    let qh = q + b * s * h * d + head * d, kh = k + b * s * kv * d + g * d, vh = v + b * s * kv * d + g * d
                    var p = probs + (b * h + head) * perHead
                    let o = out + b * s * h * d + head * d
                    for block in blocks(s) {
                        let (r0, rows, visible) = (block.lowerBound, block.count, block.upperBound)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(visible), Int32(d),
                                    shape.scale, qh + r0 * h * d, Int32(h * d), kh, Int32(kv * d), 0, p, Int32(visible))
                        // Row r sees keys 0...r (within the window); the rest of the block's row becomes 0.
                        WindowedSoftmax.rows(p, width: visible, rows: 0..<rows, firstPosition: r0, window: shape.window)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(visible),
                                    1, p, Int32(visible), vh, Int32(kv * d), 0, o + r0 * h * d, Int32(h * d))
                        p += rows * visible
                    }
                }
            }
        }
    }

    /// How many row blocks of d(scores) fit in the (S, S) `dScores` buffer at once: the backward
    /// runs on that many threads at most, each with a block of its own.
    static func gradientSlots(_ s: Int) -> Int { max(1, s / min(s, blockRows)) }

    /// dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P⊙(dP − rowsum(dP⊙P)); dQ = scale·dS·K; dK += scale·dSᵀ·Q,
    /// by row blocks over the keys each block sees. GQA heads of a group add into their kv head,
    /// so (batch row, kv head) pairs go across the threads, each with its own block of dScores.
    /// Writes dq, dk, dv over what they held.
    static func backward(dOut: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         probs: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                         dv: UnsafeMutablePointer<Float>, dScores: UnsafeMutablePointer<Float>, shape: Shape) {
        let s = shape.seqLen, h = shape.heads, kv = shape.kvHeads, d = shape.headDim, t = shape.rows * s
        dk.update(repeating: 0, count: t * kv * d)
        dv.update(repeating: 0, count: t * kv * d)
        let items = shape.rows * kv, slots = min(Parallel.threads, gradientSlots(s), items), perHead = headFloats(s)
        func work(_ slot: Int) {
                let dS = dScores + slot * min(s, blockRows) * s
                for item in (items * slot / slots)..<(items * (slot + 1) / slots) {
                    let b = item / kv, g = item % kv
                    for head in (g * shape.group)..<((g + 1) * shape.group) {
                        let qOffset = b * s * h * d + head * d, kvOffset = b * s * kv * d + g * d
                        var pBlock = probs + (b * h + head) * perHead
                        // A block's probabilities and d(scores) are both (rows, visible), rows `visible` apart.
                        for block in blocks(s) {
                            let (r0, rows, visible) = (block.lowerBound, block.count, block.upperBound)
                            let dO = dOut + qOffset + r0 * h * d, ld = Int32(visible)
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(visible), Int32(d), Int32(rows),
                                        1, pBlock, ld, dO, Int32(h * d), 1, dv + kvOffset, Int32(kv * d))
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(visible), Int32(d),
                                        1, dO, Int32(h * d), v + kvOffset, Int32(kv * d), 0, dS, ld)
                            lk_softmax_backward_causal(pBlock, dS, visible, r0, r0 + rows)
                            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(visible),
                                        shape.scale, dS, ld, k + kvOffset, Int32(kv * d), 0, dq + qOffset + r0 * h * d, Int32(h * d))
                            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(visible), Int32(d), Int32(rows),
                                        shape.scale, dS, ld, q + qOffset + r0 * h * d, Int32(h * d), 1, dk + kvOffset, Int32(kv * d))
                            pBlock += rows * visible
                        }
                    }
                }
        }
        guard slots > 1 else { return work(0) }
        BLAS.oneThreadPerCall { DispatchQueue.concurrentPerform(iterations: slots, execute: work) }
    }
}
