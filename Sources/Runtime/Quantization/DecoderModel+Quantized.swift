/// QLoRAM's carrier: the decoder linears (q, k, v, o, gate, up, down) in NF4; embeddings, norms
/// and lm_head stay as they are, as transformers + bitsandbytes quantize a LLaMA.
extension DecoderModel {
    /// True when any decoder linear is NF4 (the model is then a frozen base: LoRA only).
    public var isQuantized: Bool {
        layers.contains { layer in layer.linears.contains { $0.weight.nf4 != nil } }
    }

    /// Bytes the NF4 copy of this model will occupy, before building it.
    public func quantizedByteCount(blockSize: Int = 64, doubleQuant: Bool = true) -> Int {
        var bytes = byteCount
        for layer in layers {
            for (_, weight) in layer.linears {
                let n = weight.elementCount, blocks = (n + blockSize - 1) / blockSize
                let scales = doubleQuant ? blocks + 4 * ((blocks + NF4Tensor.nestedBlockSize - 1) / NF4Tensor.nestedBlockSize) + 4 : 4 * blocks
                bytes += (n + 1) / 2 + scales - weight.byteCount
            }
        }
        return bytes
    }

    /// A new model whose decoder linears are NF4 (`blockSize` 32…4096, a power of two); the rest
    /// is shared with this one. Throws QuantizationError for a bad block size, an already
    /// quantized model or non-finite weights. `checkpoint` runs before each tensor; what it
    /// throws (a cancellation) ends the quantization.
    public func quantized(blockSize: Int = 64, doubleQuant: Bool = true, checkpoint: () throws -> Void = {}) throws -> DecoderModel {
        guard NF4Tensor.supportedBlockSizes.contains(blockSize) else {
            throw QuantizationError(field: "blockSize", "must be a power of two from 32 to 4096, got \(blockSize)")
        }
        guard !isQuantized else { throw QuantizationError(field: "modelId", "the model is already NF4") }
        func quantize(_ weight: Weight) throws -> Weight {
            try checkpoint()
            let tensor: NF4Tensor
            if let values = weight.float32 {
                tensor = try NF4Tensor(quantizing: values, count: weight.elementCount, blockSize: blockSize, doubleQuant: doubleQuant)
            } else {
                let values = weight.toArray()
                tensor = try values.withUnsafeBufferPointer {
                    try NF4Tensor(quantizing: $0.baseAddress!, count: values.count, blockSize: blockSize, doubleQuant: doubleQuant)
                }
            }
            return Weight(rows: weight.rows, cols: weight.cols, nf4: tensor)
        }
        let newLayers = try layers.map { layer in
            try layer.mapLinears { try quantize($1) }
        }
        // A quantized carrier is still the pruned model it came from: the manifest travels with it.
        return DecoderModel(config: config, embedding: embedding, layers: newLayers, finalNorm: finalNorm,
                          lmHead: config.tiedEmbeddings ? nil : lmHead, pruning: pruning)
    }
}
