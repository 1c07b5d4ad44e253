import Foundation
import MemoryPlanner

/// Gemma 3 text (`Gemma3ForCausalLM`, model_type `gemma3_text`; GGUF `gemma3`): four RMSNorms a
/// layer (before and after attention, before and after the MLP), all with (1 + w) weights;
/// q_norm and k_norm; embeddings scaled by √hidden (the tied head reads them unscaled); GeGLU
/// with the tanh GELU; sliding-window attention on the local layers (`layer_types`, or every
/// `sliding_window_pattern`-th layer global) with their own rope (θ 10000, unscaled) and the
/// global layers' θ and scaling; scores scaled by query_pre_attn_scalar^−½.
///
/// Norm weights are held as the multiplier (1 + w): llama.cpp's converter stores them so in GGUF,
/// and transformers' checkpoints store w, so loading them adds `hfNormOffset` and saving takes it
/// off. Gradients are the same for either (no weight decay on norms).
public enum Gemma3: ModelFamilyDescription {
    public static let name = "gemma3"
    public static let hfArchitectures = ["Gemma3ForCausalLM"]
    public static let modelTypes = ["gemma3_text"]
    public static let ggufArchitecture = "gemma3"
    public static let ggufPermutesQK = false
    public static let hfNormOffset: Float = 1
    public static let layout = ModelLayout.decoder
        .renaming(.norm(.mlpInput), hf: "pre_feedforward_layernorm.weight", gguf: "ffn_norm.weight")
        .adding([TensorSpec(hf: "post_attention_layernorm.weight", gguf: "post_attention_norm.weight", [.hidden], .norm(.attentionOutput))],
                after: .linear(.o))
        .adding([TensorSpec(hf: "self_attn.q_norm.weight", gguf: "attn_q_norm.weight", [.headDim], .headNorm(.q)),
                 TensorSpec(hf: "self_attn.k_norm.weight", gguf: "attn_k_norm.weight", [.headDim], .headNorm(.k))],
                after: .linear(.o))
        .adding([TensorSpec(hf: "post_feedforward_layernorm.weight", gguf: "post_ffw_norm.weight", [.hidden], .norm(.mlpOutput))],
                after: .linear(.down))

    public static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws {
        let object = fields.object
        try fields.requireActivation("hidden_activation", "gelu_pytorch_tanh")
        try fields.requireActivation("hidden_act", "gelu_pytorch_tanh")
        config.activation = .geluTanh
        try fields.refuseTrue("attention_bias", "Gemma 3 without attention biases is supported")
        try fields.refuseTrue("use_bidirectional_attention", "causal Gemma 3 is supported")
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] where !(object[key] == nil || object[key] is NSNull) {
            throw FormatError(file: fields.file, "\(key) is set; Gemma 3 without softcapping is supported")
        }
        let scalar = try fields.optionalPositiveInt("query_pre_attn_scalar") ?? config.headDim
        config.attentionScale = 1 / Float(scalar).squareRoot()
        config.embeddingScale = Float(Double(config.hiddenSize).squareRoot())
        config.slidingWindow = try fields.optionalPositiveInt("sliding_window")
        config.slidingLayers = try slidingLayers(fields, layerCount: config.layerCount)
        // transformers 5: rope_parameters per layer type; older files: rope_theta, rope_scaling
        // (global) and rope_local_base_freq.
        let perType = object["rope_parameters"] as? [String: Any]
        if let global = perType?["full_attention"] as? [String: Any] {
            config.ropeTheta = try ConfigFields(global, file: fields.file, prefix: "rope_parameters.full_attention.").optionalDouble("rope_theta") ?? 1e6
            config.ropeScaling = try ModelConfig.parseRopeScaling(global, file: fields.file)
        }
        var local = ModelConfig.LocalRope(theta: try fields.optionalDouble("rope_local_base_freq") ?? 10000)
        if let sliding = perType?["sliding_attention"] as? [String: Any] {
            let localFields = ConfigFields(sliding, file: fields.file, prefix: "rope_parameters.sliding_attention.")
            local = .init(theta: try localFields.optionalDouble("rope_theta") ?? 10000,
                          scaling: try ModelConfig.parseRopeScaling(sliding, file: fields.file))
        }
        config.localRope = local
    }

    /// `layer_types` when given, else every `sliding_window_pattern`-th layer global (6 by default).
    static func slidingLayers(_ fields: ConfigFields, layerCount: Int) throws -> [Bool] {
        if let types = fields.object["layer_types"] as? [Any] {
            guard types.count == layerCount else {
                throw FormatError(file: fields.file, "layer_types has \(types.count) entries for \(layerCount) layers")
            }
            return try types.map {
                switch $0 as? String {
                case "sliding_attention": return true
                case "full_attention": return false
                default: throw FormatError(file: fields.file, "layer_types entry \($0) is not sliding_attention or full_attention")
                }
            }
        }
        let pattern = try fields.optionalPositiveInt("sliding_window_pattern") ?? fields.optionalPositiveInt("_sliding_window_pattern") ?? 6
        return (0..<layerCount).map { ($0 + 1) % pattern != 0 }
    }

    /// llama.cpp's gemma3 reading (llama-model.cpp): window from `attention.sliding_window`, every
    /// sixth layer global, local rope θ 10000 unscaled, and scores scaled by 1/√head_dim, except
    /// the 62-layer 27B, whose query_pre_attn_scalar is hidden / heads. A file loramd wrote for a
    /// model that differs from those rules says so in the keys `writeGGUF` adds.
    public static func readGGUF(_ keys: GGUFMetadataReader, into config: inout ModelConfig) throws {
        config.activation = .geluTanh
        config.slidingWindow = try keys.optionalPositiveInt("gemma3.attention.sliding_window", limit: SizeLimits.positions)
        config.slidingLayers = try keys.boolArray(Keys.pattern) ?? llamaCppPattern(layers: config.layerCount)
        guard config.slidingLayers?.count == config.layerCount else {
            throw FormatError(file: keys.file, "\(Keys.pattern) has \(config.slidingLayers!.count) entries for \(config.layerCount) layers")
        }
        config.localRope = .init(theta: try keys.optionalPositiveDouble(Keys.localTheta) ?? 10000)
        config.attentionScale = try keys.optionalPositiveDouble(Keys.scale).map(Float.init) ?? llamaCppScale(config)
        config.embeddingScale = Float(Double(config.hiddenSize).squareRoot())
        for key in ["gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping"] where keys.metadata[key] != nil {
            throw FormatError(file: keys.file, "\(key) is set; Gemma 3 without softcapping is supported")
        }
    }

    enum Keys {
        static let pattern = "gemma3.attention.sliding_window_pattern", localTheta = "gemma3.rope.freq_base_swa"
        static let scale = "gemma3.attention.scale"
    }

    static func llamaCppPattern(layers: Int) -> [Bool] { (0..<layers).map { ($0 + 1) % 6 != 0 } }
    static func llamaCppScale(_ config: ModelConfig) -> Float {
        1 / Float(config.layerCount == 62 ? config.hiddenSize / config.headCount : config.headDim).squareRoot()
    }

    /// The window, and where the model differs from what llama.cpp assumes of a gemma3 file, the
    /// keys that say how (the layer pattern, the local θ, the score scale).
    public static func writeGGUF(_ config: ModelConfig, into writer: inout GGUFWriter) {
        if let window = config.slidingWindow { writer.set("gemma3.attention.sliding_window", .uint32(UInt32(window))) }
        let pattern = (0..<config.layerCount).map { config.window(layer: $0) != nil }
        if pattern != llamaCppPattern(layers: config.layerCount) { writer.set(Keys.pattern, .array(.bool, pattern.map { .bool($0) })) }
        if let theta = config.localRope?.theta, theta != 10000 { writer.set(Keys.localTheta, .float32(Float(theta))) }
        if let scale = config.attentionScale, scale != llamaCppScale(config) { writer.set(Keys.scale, .float32(scale)) }
    }

    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {
        object["hidden_act"] = nil
        object["hidden_activation"] = "gelu_pytorch_tanh"
        object["attention_bias"] = false
        object["final_logit_softcapping"] = NSNull()
        object["attn_logit_softcapping"] = NSNull()
        if let scale = config.attentionScale { object["query_pre_attn_scalar"] = Int((1 / (scale * scale)).rounded()) }
        object["sliding_window"] = config.slidingWindow.map { $0 as Any } ?? NSNull()
        object["layer_types"] = (0..<config.layerCount).map { config.window(layer: $0) != nil ? "sliding_attention" : "full_attention" }
        object["rope_local_base_freq"] = config.localRope?.theta ?? 10000
    }

    /// Gemma 3 4B-27B ship as Gemma3ForConditionalGeneration (model_type gemma3): the text model
    /// is `text_config`, which lists only what differs from Gemma3TextConfig's defaults; its
    /// weights sit under `language_model.` (CheckpointDirectory reads them by the decoder's names).
    public static func textModelConfig(_ object: [String: Any]) -> [String: Any]? {
        guard object["model_type"] as? String == "gemma3" || (object["architectures"] as? [String])?.contains("Gemma3ForConditionalGeneration") == true,
              let text = object["text_config"] as? [String: Any] else { return nil }
        let defaults: [String: Any] = [
            "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
            "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-6, "sliding_window": 4096, "query_pre_attn_scalar": 256, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "hidden_activation": "gelu_pytorch_tanh", "bos_token_id": 2, "eos_token_id": 1,
            "tie_word_embeddings": true,
        ]
        var merged = defaults.merging(text) { $1 }
        for key in ["bos_token_id", "eos_token_id", "tie_word_embeddings", "dtype", "torch_dtype"] where text[key] == nil {
            if let value = object[key] { merged[key] = value }
        }
        merged["architectures"] = ["Gemma3ForCausalLM"]
        merged["model_type"] = "gemma3_text"
        return merged
    }

    public static let makerFields: [String: Any] = ["sliding_window": 32, "sliding_window_pattern": 2]

    public static let presets: [(name: String, config: [String: Any])] = [
        ("gemma-3-270m", gemma3(hidden: 640, intermediate: 2048, layers: 18, heads: 4, kvHeads: 1, headDim: 256, scalar: 256)),
        ("gemma-3-1b", gemma3(hidden: 1152, intermediate: 6912, layers: 26, heads: 4, kvHeads: 1, headDim: 256, scalar: 256)),
        ("gemma-3-4b", gemma3(hidden: 2560, intermediate: 10240, layers: 34, heads: 8, kvHeads: 4, headDim: 256, scalar: 256)),
        ("gemma-3-27b", gemma3(hidden: 5376, intermediate: 21504, layers: 62, heads: 32, kvHeads: 16, headDim: 128, scalar: 168)),
    ]

    /// The text config of Gemma 3's published checkpoints (the 4B and 27B ones inside gemma3's
    /// multimodal config): what shapes memory.
    static func gemma3(hidden: Int, intermediate: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, scalar: Int) -> [String: Any] {
        ["architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_activation": "gelu_pytorch_tanh",
         "hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kvHeads, "head_dim": headDim, "query_pre_attn_scalar": scalar, "vocab_size": 262144,
         "tie_word_embeddings": true, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
         "sliding_window": hidden == 640 ? 512 : 1024, "sliding_window_pattern": 6, "max_position_embeddings": 32768]
    }
}
