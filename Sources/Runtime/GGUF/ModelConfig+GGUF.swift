import Foundation
import MemoryPlanner

extension ModelConfig {
    /// The config a GGUF file describes (its family from `general.architecture`, the keys under
    /// that prefix, `llama.*` for LLaMA), checked against its tensors' shapes (every layer's,
    /// before anything is planned or allocated).
    /// `dimensions` gives a tensor's GGUF dimensions (ne0 first), nil
    /// when the file has no such tensor. What loramd would compute differently from llama.cpp
    /// (partial rotary, YaRN scaling, experts, other architectures) is a FormatError naming the key.
    public init(ggufMetadata metadata: [String: GGUFValue], dimensions: (String) -> [Int]?, fileName file: String) throws {
        let keys = GGUFMetadataReader(metadata: metadata, file: file)
        let architecture = try keys.string("general.architecture")
        let family = try ModelRegistry.family(ggufArchitecture: architecture, file: file)
        let a = architecture + "."
        let embeddingName = family.layout.globalSpec(.embedding)!.gguf, outputName = family.layout.globalSpec(.outputHead)!.gguf
        if let experts = try keys.optionalInt(a + "expert_count"), experts > 0 {
            throw FormatError(file: file, "\(a)expert_count is \(experts): mixture-of-experts models are not supported")
        }
        let layerCount = try keys.positiveInt(a + "block_count", limit: SizeLimits.layers)
        let hidden = try keys.positiveInt(a + "embedding_length", limit: SizeLimits.hidden)
        // Per-layer widths may be arrays (llama.cpp allows that for heads and feed-forward lengths).
        let heads = try keys.perLayer(a + "attention.head_count", layers: layerCount, limit: SizeLimits.heads)
        let kvHeads = try keys.optionalPerLayer(a + "attention.head_count_kv", layers: layerCount, limit: SizeLimits.heads) ?? heads
        let intermediates = try keys.perLayer(a + "feed_forward_length", layers: layerCount, limit: SizeLimits.intermediate)

        let headDim: Int
        if let explicit = try keys.optionalPositiveInt(a + "attention.key_length", limit: SizeLimits.headDim) {
            headDim = explicit
        } else {
            guard hidden % heads[0] == 0 else {
                throw FormatError(file: file, "\(a)embedding_length \(hidden) is not a multiple of \(a)attention.head_count \(heads[0]) and \(a)attention.key_length is not given")
            }
            headDim = hidden / heads[0]
        }
        if let valueLength = try keys.optionalPositiveInt(a + "attention.value_length", limit: 1 << 16), valueLength != headDim {
            throw FormatError(file: file, "\(a)attention.value_length \(valueLength) differs from the key length \(headDim); loramd needs them equal")
        }
        guard headDim % 2 == 0 else { throw FormatError(file: file, "head dimension \(headDim) must be even for rotary embeddings") }
        if let rotary = try keys.optionalPositiveInt(a + "rope.dimension_count", limit: 1 << 16), rotary != headDim {
            throw FormatError(file: file, "\(a)rope.dimension_count \(rotary) covers part of the head (\(headDim)); partial rotary embeddings are not supported")
        }
        for i in 0..<layerCount where heads[i] % kvHeads[i] != 0 {
            throw FormatError(file: file, "layer \(i): \(heads[i]) attention heads is not a multiple of \(kvHeads[i]) key/value heads")
        }

        guard let embedding = dimensions(embeddingName), embedding.count == 2 else {
            throw FormatError(file: file, "missing tensor \(embeddingName) (2-D)")
        }
        guard embedding[0] == hidden else {
            throw FormatError(file: file, "tensor \(embeddingName) has rows of \(embedding[0]); \(a)embedding_length is \(hidden)")
        }
        let vocab = try keys.optionalPositiveInt(a + "vocab_size", limit: SizeLimits.vocab) ?? embedding[1]
        guard vocab == embedding[1] else {
            throw FormatError(file: file, "\(a)vocab_size \(vocab) differs from \(embeddingName)'s \(embedding[1]) rows")
        }

        self.init(hiddenSize: hidden, intermediateSize: intermediates[0], layerCount: layerCount, headCount: heads[0],
                  kvHeadCount: kvHeads[0], headDim: headDim, vocabSize: vocab,
                  rmsNormEps: Float(try keys.optionalPositiveDouble(a + "attention.layer_norm_rms_epsilon") ?? 1e-5),
                  ropeTheta: try keys.optionalPositiveDouble(a + "rope.freq_base") ?? 10000,
                  tiedEmbeddings: dimensions(outputName) == nil,
                  maxPositionEmbeddings: try keys.optionalPositiveInt(a + "context_length", limit: SizeLimits.positions) ?? 2048,
                  bosTokenId: try keys.optionalInt("tokenizer.ggml.bos_token_id"),
                  eosTokenIds: try keys.optionalInt("tokenizer.ggml.eos_token_id").map { [$0] } ?? [],
                  declaredDType: nil, family: family)
        layers = (0..<layerCount).map { ModelShape.Layer(heads: heads[$0], kvHeads: kvHeads[$0], intermediate: intermediates[$0]) }
        ropeScaling = try Self.ggufRopeScaling(keys, prefix: a)
        try family.type.readGGUF(keys, into: &self)
        try checkSizes(file: file)
        try checkGGUFTensors(dimensions: dimensions, file: file)
    }

    /// Every width the metadata states must be a tensor of the file (whose sizes the reader has
    /// checked against the file's), so no plan or allocation is made for shapes a file only claims.
    private func checkGGUFTensors(dimensions: (String) -> [Int]?, file: String) throws {
        func require(_ name: String, _ expected: [Int]) throws {
            guard let found = dimensions(name) else { throw FormatError(file: file, "missing tensor \(name)") }
            guard found == expected else {
                throw FormatError(file: file, "tensor \(name) has dimensions \(found) (ne0 first); the metadata implies \(expected)")
            }
        }
        // GGUF dimensions list ne0 (transformers' last axis) first; the embedding was checked first.
        for (spec, layer, shape) in tensors where spec.role != .embedding {
            try require(ModelLayout.ggufName(spec, layer: layer), shape.reversed())
        }
    }

    static func ggufRopeScaling(_ keys: GGUFMetadataReader, prefix a: String) throws -> RopeScaling? {
        let type = try keys.optionalString(a + "rope.scaling.type") ?? "none"
        switch type {
        case "none": return nil
        case "linear":
            guard let factor = try keys.optionalPositiveDouble(a + "rope.scaling.factor") else {
                throw FormatError(file: keys.file, "\(a)rope.scaling.type linear needs \(a)rope.scaling.factor")
            }
            return factor == 1 ? nil : .linear(factor: factor)
        default:
            throw FormatError(file: keys.file, "\(a)rope.scaling.type '\(type)' is not supported (none and linear are; LLaMA-3.1's scaling comes as the rope_freqs tensor)")
        }
    }

    /// LLaMA-3.1 GGUFs carry their rope scaling as `rope_freqs.weight`, a divisor per rotary
    /// frequency. loramd recognises the llama3 rule's divisors (so a saved config.json says
    /// `rope_type: llama3`) and otherwise keeps the divisors as they are.
    public mutating func applyGGUFFrequencyDivisors(_ divisors: [Float], file: String) throws {
        guard divisors.count == headDim / 2 else {
            throw FormatError(file: file, "tensor \(GGUFRotaryOrder.ropeFrequencies) has \(divisors.count) values for \(headDim / 2) rotary frequencies")
        }
        guard divisors.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw FormatError(file: file, "tensor \(GGUFRotaryOrder.ropeFrequencies) holds a value that is not a positive number")
        }
        if divisors.allSatisfy({ $0 == 1 }) { return }
        let plain = RotaryEmbedding(headDim: headDim, theta: ropeTheta, scaling: nil).inverseFrequencies
        let factor = Double(divisors.max()!)
        for original in [8192, 4096, 2048, 16384, 32768, 131072] {
            for (low, high) in [(1.0, 4.0), (1.0, 8.0), (1.0, 2.0)] {
                let candidate = RopeScaling.llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original)
                let scaled = RotaryEmbedding(headDim: headDim, theta: ropeTheta, scaling: candidate).inverseFrequencies
                let matches = zip(zip(plain, scaled), divisors).allSatisfy { pair, divisor in
                    abs(pair.0 / pair.1 - divisor) <= 1e-4 * divisor
                }
                if matches { ropeScaling = candidate; return }
            }
        }
        ropeScaling = .divisors(divisors)
    }
}
