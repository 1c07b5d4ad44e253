import Foundation
import MemoryPlanner

/// What the runtime needs of a decoder's config.json, validated: every required field present,
/// every size positive and consistent. The fields every family shares are read here, the rest by
/// the family's description (`ModelRegistry`). Anything we do not compute correctly (other
/// activations, other architectures) is a FormatError, never a wrong answer. The one config
/// parser: `memory/plan` and `loramd plan` read config.json through it too.
public struct ModelConfig: Equatable, Sendable {
    /// The family (`ModelRegistry`): its tensors and its own fields.
    public var family: ModelFamily
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var tiedEmbeddings: Bool
    public var maxPositionEmbeddings: Int
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]
    /// `dtype` / `torch_dtype` of the checkpoint, if stated ("float32", "bfloat16", "float16").
    public var declaredDType: String?
    /// Per-layer shapes; uniform for an original model, varying for a pruned one.
    public var layers: [ModelShape.Layer]
    /// Each query attends to at most this many latest keys (itself included) in the sliding
    /// layers; nil: all (Mistral's and Gemma 3's `sliding_window`).
    public var slidingWindow: Int?
    /// Which layers slide (Gemma 3's `layer_types`); nil: every layer, when `slidingWindow` is set.
    public var slidingLayers: [Bool]?
    /// The rotary embedding of the sliding layers when it differs from the others' (Gemma 3:
    /// θ 10000 unscaled locally, `ropeTheta` and `ropeScaling` globally).
    public var localRope: LocalRope?
    /// Attention scores are q·k times this; nil: 1/√head_dim (Gemma 3: query_pre_attn_scalar^−½).
    public var attentionScale: Float?
    /// The embedding rows are multiplied by this before the first layer (Gemma 3: √hidden).
    public var embeddingScale: Float?
    /// The MLP's gate activation.
    public var activation: Activation = .silu

    public struct LocalRope: Equatable, Sendable {
        public var theta: Double
        public var scaling: RopeScaling?
        public init(theta: Double, scaling: RopeScaling? = nil) {
            self.theta = theta
            self.scaling = scaling
        }
    }

    /// silu(gate)·up (LLaMA, Qwen) or gelu_tanh(gate)·up (Gemma's GeGLU).
    public enum Activation: String, Equatable, Sendable { case silu, geluTanh = "gelu_pytorch_tanh" }

    /// The window of layer `layer`'s attention (nil: it sees every earlier key).
    public func window(layer: Int) -> Int? {
        guard let slidingWindow, slidingLayers?[layer] ?? true else { return nil }
        return slidingWindow
    }

    /// Whether layer `layer` rotates with `localRope` (a sliding layer of a family that has one).
    public func usesLocalRope(layer: Int) -> Bool { localRope != nil && window(layer: layer) != nil }

    public enum RopeScaling: Equatable, Sendable {
        case linear(factor: Double)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
        /// A divisor per rotary frequency (D/2 of them), as a GGUF's `rope_freqs` tensor gives when
        /// it is not the llama3 rule; saved as rope_type `loram_divisors`.
        case divisors([Float])
    }

    public static let fileName = "config.json"

    public init(hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int? = nil, vocabSize: Int, rmsNormEps: Float = 1e-5, ropeTheta: Double = 10000,
                ropeScaling: RopeScaling? = nil, tiedEmbeddings: Bool = false, maxPositionEmbeddings: Int = 2048,
                bosTokenId: Int? = 1, eosTokenIds: [Int] = [2], declaredDType: String? = "float32",
                family: ModelFamily = ModelFamily(Llama.self)) {
        self.family = family
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / headCount
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tiedEmbeddings = tiedEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.declaredDType = declaredDType
        self.layers = Array(repeating: ModelShape.Layer(heads: headCount, kvHeads: kvHeadCount, intermediate: intermediateSize),
                            count: layerCount)
    }

    public init(directory: URL) throws {
        try self.init(json: try FormatError.contents(of: Self.fileName, in: directory))
    }

    public init(json data: Data) throws {
        let file = Self.fileName
        // A multimodal checkpoint whose text model loramd runs is read as that model (its text_config).
        let object = ModelRegistry.textModelConfig(try FormatError.jsonObject(data, file: file))
        let fields = ConfigFields(object, file: file)
        family = try ModelRegistry.family(architectures: object["architectures"] as? [String], modelType: object["model_type"] as? String,
                                          file: file)

        hiddenSize = try fields.positiveInt("hidden_size")
        intermediateSize = try fields.positiveInt("intermediate_size")
        layerCount = try fields.positiveInt("num_hidden_layers")
        headCount = try fields.positiveInt("num_attention_heads")
        kvHeadCount = try fields.optionalPositiveInt("num_key_value_heads") ?? headCount
        vocabSize = try fields.positiveInt("vocab_size")
        guard headCount % kvHeadCount == 0 else {
            throw FormatError(file: file, "num_attention_heads \(headCount) is not a multiple of num_key_value_heads \(kvHeadCount)")
        }
        if let explicit = try fields.optionalPositiveInt("head_dim") {
            headDim = explicit
        } else {
            guard hiddenSize % headCount == 0 else {
                throw FormatError(file: file, "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(headCount) and head_dim is not given")
            }
            headDim = hiddenSize / headCount
        }
        guard headDim % 2 == 0 else { throw FormatError(file: file, "head_dim \(headDim) must be even for rotary embeddings") }
        // Within SizeLimits before anything is sized by them (the layer list, the planned bytes).
        try Self.checkWidths(file: file, hidden: hiddenSize, intermediate: intermediateSize, layers: layerCount, heads: headCount,
                             kvHeads: kvHeadCount, headDim: headDim, vocab: vocabSize)
        rmsNormEps = Float(try fields.optionalDouble("rms_norm_eps") ?? 1e-6)
        tiedEmbeddings = try fields.optionalBool("tie_word_embeddings") ?? false
        let positions = try fields.optionalPositiveInt("max_position_embeddings") ?? 2048
        try Self.sizeChecked(file: file) { try SizeLimits.check(positions, atMost: SizeLimits.positions, "max_position_embeddings") }
        maxPositionEmbeddings = positions
        bosTokenId = try fields.tokenIds("bos_token_id").first
        eosTokenIds = try fields.tokenIds("eos_token_id")
        declaredDType = (object["dtype"] as? String) ?? (object["torch_dtype"] as? String)

        // transformers 5 puts rope_theta and the scaling into rope_parameters; older files use
        // a top-level rope_theta and rope_scaling.
        let ropeParameters = object["rope_parameters"] as? [String: Any]
        let theta = try ConfigFields(ropeParameters ?? [:], file: file, prefix: "rope_parameters.").optionalDouble("rope_theta")
        ropeTheta = try theta ?? fields.optionalDouble("rope_theta") ?? 10000
        let scaling = (object["rope_scaling"] as? [String: Any]) ?? ropeParameters
        ropeScaling = try scaling.flatMap { try Self.parseRopeScaling($0, file: file) }
        if case .divisors(let divisors) = ropeScaling, divisors.count != headDim / 2 {
            throw FormatError(file: file, "rope_scaling.divisors has \(divisors.count) values for \(headDim / 2) rotary frequencies")
        }
        layers = try Self.parseLayerShapes(object, file: file, layerCount: layerCount,
                                           uniform: ModelShape.Layer(heads: headCount, kvHeads: kvHeadCount, intermediate: intermediateSize))
        try family.type.readConfig(fields, into: &self)
        try checkSizes(file: file)
    }

    /// FormatError in `file` unless every width (each layer's too) is within `SizeLimits` and the
    /// parameters together within `SizeLimits.parameters`: what a config.json or a GGUF header
    /// says is checked before anything is planned, charged or allocated from it.
    public func checkSizes(file: String) throws {
        try Self.sizeChecked(file: file) { try modelShape.checkSizes() }
    }

    /// The uniform widths against `SizeLimits`, before a list of `layers` entries is made.
    static func checkWidths(file: String, hidden: Int, intermediate: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, vocab: Int) throws {
        try sizeChecked(file: file) {
            try SizeLimits.checkWidths(hidden: hidden, intermediate: intermediate, layers: layers, heads: heads,
                                       kvHeads: kvHeads, headDim: headDim, vocab: vocab)
        }
    }

    /// `body`'s SizeError as a FormatError of `file`.
    static func sizeChecked(file: String, _ body: () throws -> Void) throws {
        do { try body() } catch let error as SizeError { throw FormatError(file: file, error.description) }
    }

    static func parseRopeScaling(_ object: [String: Any], file: String) throws -> RopeScaling? {
        let type = (object["rope_type"] as? String) ?? (object["type"] as? String) ?? "default"
        let fields = ConfigFields(object, file: file, prefix: "rope_scaling.")
        switch type {
        case "default":
            return nil
        case "linear":
            return .linear(factor: try fields.requiredDouble("factor"))
        case "llama3":
            return .llama3(factor: try fields.requiredDouble("factor"),
                           lowFreqFactor: try fields.requiredDouble("low_freq_factor"),
                           highFreqFactor: try fields.requiredDouble("high_freq_factor"),
                           originalMaxPositionEmbeddings: try fields.positiveInt("original_max_position_embeddings"))
        case "loram_divisors":
            let values = object["divisors"] as? [Any] ?? []
            let divisors = values.compactMap { ConfigFields.isBoolean($0) ? nil : ($0 as? Double).map(Float.init) }
            guard !divisors.isEmpty, divisors.count == values.count, divisors.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw FormatError(file: file, "rope_scaling.divisors must be a list of positive numbers")
            }
            return .divisors(divisors)
        default:
            throw FormatError(file: file, "rope scaling type '\(type)' is not supported (default, linear and llama3 are)")
        }
    }

    /// A pruned model records its per-layer widths under `loram.layers`; an original has none.
    static func parseLayerShapes(_ object: [String: Any], file: String, layerCount: Int, uniform: ModelShape.Layer) throws -> [ModelShape.Layer] {
        guard let loram = object["loram"] as? [String: Any], let entries = loram["layers"] as? [[String: Any]] else {
            return Array(repeating: uniform, count: layerCount)
        }
        guard entries.count == layerCount else {
            throw FormatError(file: file, "loram.layers has \(entries.count) entries for \(layerCount) layers")
        }
        return try entries.enumerated().map { index, entry in
            let fields = ConfigFields(entry, file: file, prefix: "loram.layers[\(index)].")
            let shape = ModelShape.Layer(heads: try fields.positiveInt("num_attention_heads"), kvHeads: try fields.positiveInt("num_key_value_heads"), intermediate: try fields.positiveInt("intermediate_size"))
            guard shape.heads % shape.kvHeads == 0 else {
                throw FormatError(file: file, "loram.layers[\(index)]: \(shape.heads) heads is not a multiple of \(shape.kvHeads) kv heads")
            }
            return shape
        }
    }

    /// config.json in the transformers layout (what `model/save` and `make-model` write).
    public func jsonObject() -> [String: Any] {
        var object: [String: Any] = [
            "architectures": [family.hfArchitecture], "model_type": family.modelType, "attention_dropout": 0.0,
            "hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": layerCount,
            "num_attention_heads": headCount, "num_key_value_heads": kvHeadCount, "head_dim": headDim,
            "vocab_size": vocabSize, "rms_norm_eps": Double(rmsNormEps), "rope_theta": ropeTheta,
            "tie_word_embeddings": tiedEmbeddings, "max_position_embeddings": maxPositionEmbeddings,
            "initializer_range": 0.02, "use_cache": true, "hidden_act": activation.rawValue,
        ]
        family.type.writeConfig(self, into: &object)
        if let bosTokenId { object["bos_token_id"] = bosTokenId }
        object["eos_token_id"] = eosTokenIds.count == 1 ? eosTokenIds[0] as Any : eosTokenIds as Any
        if let declaredDType { object["torch_dtype"] = declaredDType }
        switch ropeScaling {
        case .none: break
        case .linear(let factor): object["rope_scaling"] = ["rope_type": "linear", "factor": factor]
        case .llama3(let factor, let low, let high, let original):
            object["rope_scaling"] = ["rope_type": "llama3", "factor": factor, "low_freq_factor": low,
                                      "high_freq_factor": high, "original_max_position_embeddings": original]
        case .divisors(let divisors):
            object["rope_scaling"] = ["rope_type": "loram_divisors", "divisors": divisors.map(Double.init)]
        }
        let uniform = ModelShape.Layer(heads: headCount, kvHeads: kvHeadCount, intermediate: intermediateSize)
        if layers.contains(where: { $0 != uniform }) {
            object["loram"] = ["layers": layers.map {
                ["num_attention_heads": $0.heads, "num_key_value_heads": $0.kvHeads, "intermediate_size": $0.intermediate]
            }]
        }
        return object
    }

    public func jsonData() throws -> Data {
        try JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
    }
}

extension ModelConfig {
    /// Every tensor the config implies, in the order files list them (the embedding, each layer's,
    /// then the final norm and an untied head): the layout's entry, its layer (nil: global) and
    /// transformers' shape. The one walk loading, planned bytes and shape checks share.
    public var tensors: [(spec: TensorSpec, layer: Int?, shape: [Int])] {
        let layout = family.layout, globals = layout.globals(tied: tiedEmbeddings)
        func global(_ spec: TensorSpec) -> (spec: TensorSpec, layer: Int?, shape: [Int]) { (spec, nil, shape(of: spec, layer: layers[0])) }
        var out = globals.filter { $0.role == .embedding }.map(global)
        for (i, layer) in layers.enumerated() { out += layout.layer.map { ($0, i, shape(of: $0, layer: layer)) } }
        return out + globals.filter { $0.role != .embedding }.map(global)
    }

    /// transformers' shape of tensor `spec` in a layer of `layer`'s widths.
    public func shape(of spec: TensorSpec, layer: ModelShape.Layer) -> [Int] {
        spec.shape(layer, hidden: hiddenSize, headDim: headDim, vocab: vocabSize)
    }

    /// The widths the memory planner needs, per layer.
    public var modelShape: ModelShape {
        ModelShape(hidden: hiddenSize, headDim: headDim, vocab: vocabSize, tiedEmbeddings: tiedEmbeddings,
                   layers: layers.map { .init(heads: $0.heads, kvHeads: $0.kvHeads, intermediate: $0.intermediate) },
                   layout: family.layout, localRope: localRope != nil,
                   windows: slidingWindow == nil ? [] : (0..<layerCount).map(window))
    }
}
