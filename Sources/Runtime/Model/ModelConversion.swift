import Foundation

extension DecoderModel {
    /// The same model with every weight held as `dtype` (f32, bf16 or f16): weights already in it
    /// are shared, the others are narrowed (or widened) into new owned weights. NF4 weights are
    /// kept as they are. Norms and biases stay fp32 arrays but take `dtype`'s values (rounded through it), as
    /// `save` writes them: the converted model is exactly the one that loads back from its files.
    /// The pruning manifest travels along.
    public func converted(to dtype: TensorDType) -> DecoderModel {
        precondition(dtype.isWeightType && dtype != .u8, "convert to f32, bf16 or f16")
        var done: [ObjectIdentifier: Weight] = [:]
        func convert(_ w: Weight) -> Weight {
            if w.dtype == dtype || w.nf4 != nil { return w }
            if let seen = done[ObjectIdentifier(w)] { return seen }
            let owned = Weight(rows: w.rows, cols: w.cols, dtype: dtype)
            let values = w.toArray()
            values.withUnsafeBufferPointer { owned.assign($0.baseAddress!) }
            done[ObjectIdentifier(w)] = owned
            return owned
        }
        func round(_ values: [Float]) -> [Float] {
            guard dtype != .f32 else { return values }
            var bytes = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
            var out = [Float](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { v in
                bytes.withUnsafeMutableBytes { b in
                    DTypeConversion.fromFloat32(v.baseAddress!, count: values.count, to: dtype, into: b.baseAddress!)
                    out.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(b.baseAddress!, dtype: dtype, count: values.count, into: $0.baseAddress!) }
                }
            }
            return out
        }
        let embedding = convert(self.embedding)
        let layers = self.layers.map { l in
            // Rounded as saved: a (1 + w) norm's w goes through the dtype.
            l.mapLinears { convert($1) }.mapVectors { config.family.runtimeValues($0, round(config.family.hfValues($0, $1))) }
        }
        let finalNorm = config.family.runtimeValues(.finalNorm, round(config.family.hfValues(.finalNorm, self.finalNorm)))
        return DecoderModel(config: config, embedding: embedding, layers: layers, finalNorm: finalNorm,
                          lmHead: config.tiedEmbeddings ? nil : convert(lmHead), pruning: pruning)
    }

    /// The storage dtype of the decoder linears (what `converted(to:)` would keep), nil for NF4.
    public var storageDType: TensorDType? {
        isQuantized ? nil : (layers.first?.q.dtype ?? embedding.dtype)
    }
}
