import MemoryPlanner

/// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`): LLaMA's layer with biases on q, k and v (o has none),
/// NEOX rotary order in GGUF (no row permutation), tied embeddings in the small members.
/// Biases are frozen under LoRA, trained in full-parameter training, and sliced with their heads.
public enum Qwen2: ModelFamilyDescription {
    public static let name = "qwen2"
    public static let hfArchitectures = ["Qwen2ForCausalLM"]
    public static let modelTypes = ["qwen2"]
    public static let ggufArchitecture = "qwen2"
    public static let ggufPermutesQK = false
    public static let layout = ModelLayout.decoder.adding([
        TensorSpec(hf: "self_attn.q_proj.bias", gguf: "attn_q.bias", [.queryWidth], .bias(.q)),
        TensorSpec(hf: "self_attn.k_proj.bias", gguf: "attn_k.bias", [.kvWidth], .bias(.k)),
        TensorSpec(hf: "self_attn.v_proj.bias", gguf: "attn_v.bias", [.kvWidth], .bias(.v)),
    ], after: .linear(.v))

    public static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws {
        try fields.requireActivation("hidden_act", "silu")
        // transformers applies the window only with use_sliding_window, from layer max_window_layers on.
        try fields.refuseTrue("use_sliding_window", "Qwen2 with full attention on every layer is supported")
    }

    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {
        object["use_sliding_window"] = false
    }

    public static let presets: [(name: String, config: [String: Any])] = [
        ("qwen2.5-0.5b", qwen25(hidden: 896, intermediate: 4864, layers: 24, heads: 14, kvHeads: 2, tied: true)),
        ("qwen2.5-1.5b", qwen25(hidden: 1536, intermediate: 8960, layers: 28, heads: 12, kvHeads: 2, tied: true)),
        ("qwen2.5-7b", qwen25(hidden: 3584, intermediate: 18944, layers: 28, heads: 28, kvHeads: 4, tied: false)),
        ("qwen2.5-72b", qwen25(hidden: 8192, intermediate: 29568, layers: 80, heads: 64, kvHeads: 8, tied: false)),
    ]

    /// The fields of Qwen2.5's published config.json files that shape memory.
    static func qwen25(hidden: Int, intermediate: Int, layers: Int, heads: Int, kvHeads: Int, tied: Bool) -> [String: Any] {
        ["architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": hidden,
         "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kvHeads, "vocab_size": tied ? 151936 : 152064, "tie_word_embeddings": tied,
         "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "use_sliding_window": false]
    }
}
