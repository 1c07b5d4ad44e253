import Foundation

/// Folding an adapter into the weights: W' = W + scaling·B·A on every targeted linear, computed
/// in fp32 and stored in W's own dtype. The result is a new model; the original is untouched
/// (its weights, borrowed from a memory mapping or not, are only read, and the linears the
/// adapter does not target are shared with it, as weights are immutable).
extension DecoderModel {
    /// Bytes the merged model's weights occupy: the same as this model's, plus a separate
    /// lm_head when the embeddings are tied and the adapter targets lm_head (merging unties them,
    /// since only the output projection is adapted).
    public func mergedByteCount(with adapter: LoRAAdapter) -> Int {
        // An NF4 linear the adapter targets comes out fp32.
        let widened = layers.enumerated().reduce(0) { total, item in
            total + adapter.layers[item.offset].keys.reduce(0) { sum, target in
                let weight = item.element.weight(target)
                return sum + (weight.nf4 != nil ? weight.elementCount * 4 - weight.byteCount : 0)
            }
        }
        return byteCount + widened + (config.tiedEmbeddings && adapter.lmHead != nil ? embedding.byteCount : 0)
    }

    public func merged(with adapter: LoRAAdapter) throws -> DecoderModel {
        try adapter.checkFits(self)
        let scaling = adapter.scaling
        let newLayers = layers.enumerated().map { i, layer -> DecoderLayer in
            var merged = layer
            for (target, pair) in adapter.layers[i] {
                let weight = Self.merge(layer.weight(target), pair, scaling: scaling)
                switch target {
                case .q: merged.q = weight
                case .k: merged.k = weight
                case .v: merged.v = weight
                case .o: merged.o = weight
                case .gate: merged.gate = weight
                case .up: merged.up = weight
                case .down: merged.down = weight
                case .lmHead: preconditionFailure("lm_head is not a decoder-layer linear")
                }
            }
            return merged
        }
        var newConfig = config
        var head: Weight? = config.tiedEmbeddings ? nil : lmHead
        if let pair = adapter.lmHead {
            head = Self.merge(lmHead, pair, scaling: scaling)
            newConfig.tiedEmbeddings = false
        }
        return DecoderModel(config: newConfig, embedding: embedding, layers: newLayers, finalNorm: finalNorm, lmHead: head, pruning: pruning)
    }

    /// W + scaling·B·A as a new weight of W's dtype (fp32 for an NF4 W), a block of rows at a time.
    /// Shapes: W (out, in); A (r, in); B (out, r).
    static func merge(_ weight: Weight, _ pair: LoRAPair, scaling: Float) -> Weight {
        let out = weight.rows, k = weight.cols, r = pair.a.rows
        let dtype = weight.nf4 != nil ? TensorDType.f32 : weight.dtype
        let result = Weight(rows: out, cols: k, dtype: dtype)
        let blockRows = max(1, min(out, (1 << 20) / max(1, k)))
        let block = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * k)
        defer { block.deallocate() }
        var start = 0
        while start < out {
            let n = min(blockRows, out - start)
            let rows = weight.rows(start..<(start + n), scratch: block)
            // An fp32 weight hands back its own memory, which must not be written.
            if rows != UnsafePointer(block) { block.update(from: rows, count: n * k) }
            BLAS.matmul(pair.b.float32! + start * r, pair.a.float32!, block, m: n, n: k, k: r, alpha: scaling, beta: 1)
            DTypeConversion.fromFloat32(block, count: n * k, to: dtype, into: result.storage + start * k * dtype.byteSize)
            start += n
        }
        return result
    }
}
