import CKernels
import COpenBLAS
import Foundation
import MemoryPlanner

/// Grouped-query causal self-attention over the KV cache: query head h reads kv head
/// h / (H / KV); scores are scaled by 1/sqrt(D), masked causally and softmaxed in fp32.
/// Shapes: q (T, H·D) for positions `position…position+T-1`; out (T, H·D); the cache already
/// holds keys and values for positions 0…position+T-1; `scores` holds at least H·(position+T).
///
/// One query row (decode) goes through `lk_attend_one`, heads split across cores. More rows go in blocks: every head's scores for a block first (OpenBLAS, all cores), then
/// all their softmaxes at once (split across cores), then every head's output.
enum CausalAttention {
    /// Few enough rows that little of the masked triangle is computed.
    static let maxBlockRows = StepProgramBuilder.attentionBlockRows

    /// `window`: each query sees only that many latest keys (`WindowedSoftmax`); nil: all.
    /// `scale`: of q·kᵀ (nil: 1/√D).
    static func forward(q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, tokens: Int, position: Int,
                        heads: Int, kvHeads: Int, layer: Int, cache: KVCache,
                        scores: UnsafeMutablePointer<Float>, scoreCapacity: Int, window: Int? = nil, scale: Float? = nil) {
        let d = cache.headDim, total = position + tokens
        let group = heads / kvHeads
        let scale = scale ?? 1 / Float(d).squareRoot()
        let stride = heads * d
        if tokens == 1 {
            // Decode: each head in one pass over its cache, all heads in one parallel region.
            // Keys from the window's first (held at slot first − cache.first) to the query itself.
            let first = WindowedSoftmax.firstKey(position: total - 1, window: window), seen = total - first
            let slot = first - cache.first(layer: layer)
            Parallel.ranges(heads, costPerItem: seen * d * 2) { range in
                for h in range {
                    lk_attend_one(q + h * d, cache.keys(layer: layer, head: h / group) + slot * d,
                                  cache.values(layer: layer, head: h / group) + slot * d, d, seen, scale, scores + h * total, out + h * d)
                }
            }
            return
        }
        let blockRows = max(1, min(tokens, maxBlockRows, scoreCapacity / (heads * total)))
        var start = 0
        while start < tokens {
            let rows = min(blockRows, tokens - start)
            // Keys this block can see: from its first row's window start (slot `slot` of the cache)
            // up to its last row's position; score column j is key `lowest + j`.
            let lowest = WindowedSoftmax.firstKey(position: position + start, window: window)
            let slot = lowest - cache.first(layer: layer)
            let visible = position + start + rows - lowest
            let headScores = rows * visible
            for h in 0..<heads {
                let keys = cache.keys(layer: layer, head: h / group) + slot * d
                let qBlock = q + start * stride + h * d
                let s = scores + h * headScores
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(visible), Int32(d),
                            scale, qBlock, Int32(stride), keys, Int32(d), 0, s, Int32(visible))
            }
            // Row r of head h sees keys 0…position+start+r.
            Parallel.ranges(heads * rows, costPerItem: visible * 4) { range in
                var index = range.lowerBound
                while index < range.upperBound {
                    let h = index / rows, r0 = index % rows, r1 = min(rows, r0 + (range.upperBound - index))
                    WindowedSoftmax.rows(scores + h * headScores, width: visible, rows: r0..<r1, firstPosition: position + start - lowest,
                                         window: window)
                    index += r1 - r0
                }
            }
            for h in 0..<heads {
                let values = cache.values(layer: layer, head: h / group) + slot * d
                let oBlock = out + start * stride + h * d
                let s = scores + h * headScores
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(d), Int32(visible),
                            1, s, Int32(visible), values, Int32(d), 0, oBlock, Int32(stride))
            }
            start += rows
        }
    }

    /// Softmax over the first `valid` entries of a row of `width`; the masked rest become 0.
    static func softmaxCausal(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int) {
        lk_softmax_causal(row, width, 0, 1, valid)
    }
}
