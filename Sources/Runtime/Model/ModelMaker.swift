import Foundation

/// Makes a random LLaMA checkpoint in the Hugging Face layout, for the README's main job, tests
/// and benchmarks (no downloads exist here): config.json, generation_config.json,
/// model.safetensors, and the tokenizer files the caller supplies. Real checkpoints load the same way.
public enum ModelMaker {
    public enum Preset: String, CaseIterable, Sendable {
        /// The golden model's shape: 2 layers, hidden 64, GQA 4/2, vocab 512.
        case tiny
        /// Big enough to measure: 8 layers, hidden 512, GQA 8/4, MLP 1408, vocab 4096 (~28M parameters).
        case small

        public var config: ModelConfig {
            switch self {
            case .tiny:
                return ModelConfig(hiddenSize: 64, intermediateSize: 176, layerCount: 2, headCount: 4, kvHeadCount: 2,
                                   headDim: 16, vocabSize: 512, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048)
            case .small:
                return ModelConfig(hiddenSize: 512, intermediateSize: 1408, layerCount: 8, headCount: 8, kvHeadCount: 4,
                                   headDim: 64, vocabSize: 4096, rmsNormEps: 1e-5, maxPositionEmbeddings: 4096)
            }
        }
    }

    /// Weights ~ N(0, std²) (transformers' initializer_range is 0.02; larger values make random
    /// models' outputs less uniform); RMSNorm weights 1 + N(0, normStd²).
    public struct Initialization: Sendable {
        public var seed: UInt64 = 0
        public var std: Float = 0.02
        public var normStd: Float = 0.1
        public init(seed: UInt64 = 0, std: Float = 0.02, normStd: Float = 0.1) {
            self.seed = seed
            self.std = std
            self.normStd = normStd
        }
    }

    /// `config`'s widths as a model of `family`, read through the one config parser (so the
    /// family's own fields take their defaults, plus its `makerFields`).
    public static func config(_ config: ModelConfig, family: ModelFamily) throws -> ModelConfig {
        var object = config.jsonObject()
        for key in ["architectures", "model_type", "hidden_act", "attention_bias", "mlp_bias", "pretraining_tp"] { object[key] = nil }
        object["architectures"] = [family.hfArchitecture]
        object["model_type"] = family.modelType
        object.merge(family.type.makerFields) { $1 }
        return try ModelConfig(json: try JSONSerialization.data(withJSONObject: object))
    }

    public static func randomModel(config: ModelConfig, initialization: Initialization = .init(),
                                   dtype: TensorDType = .f32) -> DecoderModel {
        var random = GaussianSource(seed: initialization.seed)
        let c = config.hiddenSize, d = config.headDim
        func weight(_ rows: Int, _ cols: Int) -> Weight {
            let w = Weight(rows: rows, cols: cols, dtype: dtype)
            var values = [Float](repeating: 0, count: rows * cols)
            for i in values.indices { values[i] = random.next() * initialization.std }
            values.withUnsafeBufferPointer { w.assign($0.baseAddress!) }
            return w
        }
        func norm(_ count: Int) -> [Float] { (0..<count).map { _ in 1 + random.next() * initialization.normStd } }
        func bias(_ count: Int) -> [Float] { (0..<count).map { _ in random.next() * initialization.std } }
        let embedding = weight(config.vocabSize, c)
        let layers = config.layers.map { shape in
            // The seven linears in the order LLaMA's maker always drew them, then the family's vectors.
            var layer = DecoderModel.DecoderLayer(
                shape: shape, vectors: [.norm(.attentionInput): norm(c), .norm(.mlpInput): norm(c)],
                q: weight(shape.heads * d, c), k: weight(shape.kvHeads * d, c), v: weight(shape.kvHeads * d, c),
                o: weight(c, shape.heads * d),
                gate: weight(shape.intermediate, c), up: weight(shape.intermediate, c), down: weight(c, shape.intermediate))
            for spec in config.family.layout.layer where spec.isVector && layer.vectors[spec.role] == nil {
                let count = config.shape(of: spec, layer: shape)[0]
                if case .bias = spec.role { layer.vectors[spec.role] = bias(count) } else { layer.vectors[spec.role] = norm(count) }
            }
            return layer
        }
        let finalNorm = norm(c)
        let lmHead = config.tiedEmbeddings ? nil : weight(config.vocabSize, c)
        return DecoderModel(config: config, embedding: embedding, layers: layers, finalNorm: finalNorm, lmHead: lmHead)
    }

    /// Writes `model` and its tokenizer into `directory` as a complete HF checkpoint.
    public static func write(_ model: DecoderModel, tokenizerJSON: Data, to directory: URL) throws {
        try model.save(to: directory)
        let config = model.config
        var generation: [String: Any] = ["_from_model_config": true, "transformers_version": "4.46.0"]
        if let bos = config.bosTokenId { generation["bos_token_id"] = bos }
        if let eos = config.eosTokenIds.first { generation["eos_token_id"] = config.eosTokenIds.count == 1 ? eos as Any : config.eosTokenIds as Any }
        let tokenizerConfig: [String: Any] = [
            "add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
            "clean_up_tokenization_spaces": false, "model_max_length": config.maxPositionEmbeddings,
            "tokenizer_class": "PreTrainedTokenizerFast",
        ]
        let files: [(String, Data)] = [
            ("generation_config.json", try JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys])),
            ("tokenizer_config.json", try JSONSerialization.data(withJSONObject: tokenizerConfig, options: [.prettyPrinted, .sortedKeys])),
            ("tokenizer.json", tokenizerJSON),
        ]
        for (name, data) in files {
            try DecoderModel.writeAtomically(data, to: directory.appendingPathComponent(name))
        }
    }
}

/// Standard normal samples (Box–Muller over xoshiro256**), reproducible from a seed.
struct GaussianSource {
    private var random: Xoshiro256StarStar
    private var spare: Float?

    init(seed: UInt64) { random = Xoshiro256StarStar(seed: seed) }

    mutating func next() -> Float {
        if let s = spare { spare = nil; return s }
        let u1 = max(random.nextUnitDouble(), 1e-300), u2 = random.nextUnitDouble()
        let r = (-2 * log(u1)).squareRoot()
        spare = Float(r * sin(2 * .pi * u2))
        return Float(r * cos(2 * .pi * u2))
    }
}
