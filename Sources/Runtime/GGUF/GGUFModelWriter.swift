import MemoryPlanner
import Foundation

/// Writing a model as a GGUF file llama.cpp loads: the metadata its converter writes under the
/// family's architecture, the layout's GGUF names, Q/K rows in its rotary order where the family
/// permutes them, norms and biases in F32, and the decoder linears and embeddings in `type` (a
/// tensor whose rows are not whole blocks of `type` stays F32, as llama.cpp's quantizer leaves it).
extension DecoderModel {
    public func saveGGUF(to url: URL, type: GGUFTensorType, tokenizer: [(key: String, value: GGUFValue)] = [],
                         name: String = "loramd", rule: OutputRule = .ggufFile) throws {
        var writer = GGUFWriter()
        let c = config
        writer.set("general.architecture", .string(c.family.ggufArchitecture))
        writer.set("general.name", .string(name))
        let a = c.family.ggufArchitecture + "."
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
        c.family.type.writeGGUF(c, into: &writer)
        for (key, value) in tokenizer { writer.set(key, value) }

        func add(_ name: String, _ weight: Weight, headDim: Int? = nil) throws {
            var values = weight.toArray()
            if let headDim {
                values = GGUFRotaryOrder.permutedRows(values, rows: weight.rows, cols: weight.cols, headDim: headDim, toGGUF: true)
            }
            let storeAs = weight.cols % type.blockSize == 0 ? type : .f32
            try writer.addTensor(name, dimensions: [weight.cols, weight.rows], values: values, as: storeAs)
        }
        func addNorm(_ name: String, _ values: [Float]) throws {
            try writer.addTensor(name, dimensions: [values.count], values: values, as: .f32)
        }
        let layout = c.family.layout
        func rotaryOrder(_ role: TensorSpec.Role) -> Int? { c.family.ggufRotaryHeadDim(role, headDim: c.headDim) }
        try add(layout.globalSpec(.embedding)!.gguf, embedding)
        if let ropeDivisors { try addNorm(GGUFRotaryOrder.ropeFrequencies, ropeDivisors) }
        for (i, layer) in layers.enumerated() {
            for spec in layout.layer {
                let name = ModelLayout.ggufName(spec, layer: i)
                if case .linear(let target) = spec.role {
                    try add(name, layer.weight(target), headDim: rotaryOrder(spec.role))
                } else {
                    let values = layer.vectors[spec.role]!
                    try addNorm(name, rotaryOrder(spec.role).map {
                        GGUFRotaryOrder.permutedRows(values, rows: values.count, cols: 1, headDim: $0, toGGUF: true)
                    } ?? values)
                }
            }
        }
        try addNorm(layout.globalSpec(.finalNorm)!.gguf, finalNorm)
        if !c.tiedEmbeddings { try add(layout.globalSpec(.outputHead)!.gguf, lmHead) }
        try writer.write(to: url, rule: rule)
    }
}
