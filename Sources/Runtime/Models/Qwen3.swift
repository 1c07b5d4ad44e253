import MemoryPlanner

/// Qwen3 (`Qwen3ForCausalLM`): LLaMA's layer without biases, with q_norm and k_norm (an RMSNorm
/// over head_dim applied to each head of q and k before RoPE; one weight of D shared by the
/// heads, so pruning leaves it whole) and an explicit head_dim that need not be hidden / heads.
public enum Qwen3: ModelFamilyDescription {
    public static let name = "qwen3"
    public static let hfArchitectures = ["Qwen3ForCausalLM"]
    public static let modelTypes = ["qwen3"]
    public static let ggufArchitecture = "qwen3"
    public static let ggufPermutesQK = false
    public static let layout = ModelLayout.decoder.adding([
        TensorSpec(hf: "self_attn.q_norm.weight", gguf: "attn_q_norm.weight", [.headDim], .headNorm(.q)),
        TensorSpec(hf: "self_attn.k_norm.weight", gguf: "attn_k_norm.weight", [.headDim], .headNorm(.k)),
    ], after: .linear(.o))

    public static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws {
        try fields.requireActivation("hidden_act", "silu")
        try fields.refuseTrue("attention_bias", "Qwen3 without attention biases is supported")
        try fields.refuseTrue("use_sliding_window", "Qwen3 with full attention on every layer is supported")
    }

    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {
        object["attention_bias"] = false
        object["use_sliding_window"] = false
    }

    public static let presets: [(name: String, config: [String: Any])] = [
        ("qwen3-0.6b", qwen3(hidden: 1024, intermediate: 3072, layers: 28, heads: 16, kvHeads: 8, tied: true)),
        ("qwen3-8b", qwen3(hidden: 4096, intermediate: 12288, layers: 36, heads: 32, kvHeads: 8, tied: false)),
        ("qwen3-32b", qwen3(hidden: 5120, intermediate: 25600, layers: 64, heads: 64, kvHeads: 8, tied: false)),
    ]

    static func qwen3(hidden: Int, intermediate: Int, layers: Int, heads: Int, kvHeads: Int, tied: Bool) -> [String: Any] {
        ["architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu", "hidden_size": hidden,
         "intermediate_size": intermediate, "num_hidden_layers": layers, "num_attention_heads": heads,
         "num_key_value_heads": kvHeads, "head_dim": 128, "vocab_size": 151936, "tie_word_embeddings": tied,
         "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 40960, "attention_bias": false]
    }
}
