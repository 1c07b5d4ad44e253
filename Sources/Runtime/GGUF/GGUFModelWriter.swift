import MemoryPlanner
import Foundation

/// Writing a LLaMA model as a GGUF file llama.cpp loads: the `llama.*` metadata its converter
/// writes, its tensor names, Q/K rows in its rotary order, norms in F32, and the decoder linears
/// and embeddings in `type` (a tensor whose rows are not whole blocks of `type` stays F32, as
/// llama.cpp's quantizer leaves it).
extension DecoderModel {
    public func saveGGUF(to url: URL, type: GGUFTensorType, tokenizer: [(key: String, value: GGUFValue)] = [],
                         name: String = "loramd", rule: OutputRule = .ggufFile) throws {
        var writer = GGUFWriter()
        let c = config
        writer.set("general.architecture", .string("llama"))
        writer.set("general.name", .string(name))
        let a = "llama."
        writer.set(a + "context_length", .uint32(UInt32(c.maxPositionEmbeddings)))
        writer.set(a + "embedding_length", .uint32(UInt32(c.hiddenSize)))
        writer.set(a + "block_count", .uint32(UInt32(c.layerCount)))
        // Widths that differ per layer (a pruned model) are arrays, as llama.cpp allows.
        func widths(_ key: String, _ width: (ModelShape.Layer) -> Int) {
            let values = c.layers.map(width)
            writer.set(a + key, Set(values).count == 1 ? .uint32(UInt32(values[0])) : .array(.uint32, values.map { .uint32(UInt32($0)) }))
        }
        widths("feed_forward_length") { $0.intermediate }
        widths("attention.head_count") { $0.heads }
        widths("attention.head_count_kv") { $0.kvHeads }
        writer.set(a + "rope.freq_base", .float32(Float(c.ropeTheta)))
        writer.set(a + "attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps))
        writer.set(a + "attention.key_length", .uint32(UInt32(c.headDim)))
        writer.set(a + "attention.value_length", .uint32(UInt32(c.headDim)))
        writer.set(a + "rope.dimension_count", .uint32(UInt32(c.headDim)))
        writer.set(a + "vocab_size", .uint32(UInt32(c.vocabSize)))
        var ropeDivisors: [Float]?
        switch c.ropeScaling {
        case .none: break
        case .linear(let factor):
            writer.set(a + "rope.scaling.type", .string("linear"))
            writer.set(a + "rope.scaling.factor", .float32(Float(factor)))
        case .llama3, .divisors:
            // llama.cpp takes these as a divisor per frequency (convert_hf_to_gguf's rope_freqs).
            let plain = RotaryEmbedding(headDim: c.headDim, theta: c.ropeTheta, scaling: nil).inverseFrequencies
            let scaled = RotaryEmbedding(headDim: c.headDim, theta: c.ropeTheta, scaling: c.ropeScaling).inverseFrequencies
            ropeDivisors = zip(plain, scaled).map { $0 / $1 }
        }
        for (key, value) in tokenizer { writer.set(key, value) }

        func add(_ name: String, _ weight: Weight, headDim: Int? = nil) throws {
            var values = weight.toArray()
            if let headDim {
                values = GGUFLlamaNames.permutedRows(values, rows: weight.rows, cols: weight.cols, headDim: headDim, toGGUF: true)
            }
            let storeAs = weight.cols % type.blockSize == 0 ? type : .f32
            try writer.addTensor(name, dimensions: [weight.cols, weight.rows], values: values, as: storeAs)
        }
        func addNorm(_ name: String, _ values: [Float]) throws {
            try writer.addTensor(name, dimensions: [values.count], values: values, as: .f32)
        }
        try add(GGUFLlamaNames.embedding, embedding)
        if let ropeDivisors { try addNorm(GGUFLlamaNames.ropeFrequencies, ropeDivisors) }
        for (i, layer) in layers.enumerated() {
            try addNorm(GGUFLlamaNames.inputNorm(i), layer.inputNorm)
            try addNorm(GGUFLlamaNames.postAttentionNorm(i), layer.postAttentionNorm)
            for (hf, weight) in layer.linears {
                let rotary = hf == "self_attn.q_proj" || hf == "self_attn.k_proj"
                try add(GGUFLlamaNames.linear(i, hf: hf)!, weight, headDim: rotary ? c.headDim : nil)
            }
        }
        try addNorm(GGUFLlamaNames.finalNorm, finalNorm)
        if !c.tiedEmbeddings { try add(GGUFLlamaNames.output, lmHead) }
        try writer.write(to: url, rule: rule)
    }
}
