import COpenBLAS
import Foundation

/// Grouped-query causal self-attention over the KV cache: query head h reads kv head
/// h / (H / KV); scores are scaled by 1/sqrt(D), masked causally and softmaxed in fp32.
/// Shapes: q (T, H·D) for positions `position…position+T-1`; out (T, H·D); the cache already
/// holds keys and values for positions 0…position+T-1. `scores` holds at least rows·(position+T).
enum CausalAttention {
    static func forward(q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tokens: Int, position: Int,
                        heads: Int, kvHeads: Int, layer: Int, cache: KVCache,
                        scores: UnsafeMutablePointer<Float>, scoreCapacity: Int) {
        let d = cache.headDim, total = position + tokens
        let group = heads / kvHeads
        let scale = 1 / Float(d).squareRoot()
        let stride = heads * d
        // Query rows per block, so the score matrix fits its buffer however long the context.
        let blockRows = max(1, min(tokens, scoreCapacity / total))
        for h in 0..<heads {
            let keys = cache.keys(layer: layer, head: h / group)
            let values = cache.values(layer: layer, head: h / group)
            var start = 0
            while start < tokens {
                let rows = min(blockRows, tokens - start)
                // Keys this block can see: up to its last row's position.
                let visible = position + start + rows
                let qBlock = q + start * stride + h * d
                let oBlock = out + start * stride + h * d
                if rows == 1 {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(visible), Int32(d), scale, keys, Int32(d), qBlock, 1, 0, scores, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(visible), Int32(d),
                                scale, qBlock, Int32(stride), keys, Int32(d), 0, scores, Int32(visible))
                }
                for r in 0..<rows {
                    softmaxCausal(scores + r * visible, valid: position + start + r + 1, width: visible)
                }
                if rows == 1 {
                    cblas_sgemv(CblasRowMajor, CblasTrans, Int32(visible), Int32(d), 1, values, Int32(d), scores, 1, 0, oBlock, 1)
                } else {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(visible),
                                1, scores, Int32(visible), values, Int32(d), 0, oBlock, Int32(stride))
                }
                start += rows
            }
        }
    }

    /// Softmax over the first `valid` entries of a row of `width`; the masked rest become 0.
    @inline(__always)
    static func softmaxCausal(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int) {
        var maxValue = -Float.infinity
        for j in 0..<valid where row[j] > maxValue { maxValue = row[j] }
        let sum = VectorExp.expShiftedSum(row, count: valid, shift: maxValue)
        let inverse = 1 / sum
        for j in 0..<valid { row[j] *= inverse }
        for j in valid..<width { row[j] = 0 }
    }
}
