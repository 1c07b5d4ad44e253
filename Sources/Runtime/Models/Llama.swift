import Foundation
import MemoryPlanner

/// LLaMA (`LlamaForCausalLM`; SmolLM2, LLaMA 2/3.x, TinyLlama, ...): the decoder every family
/// here builds on (`ModelLayout.decoder`): RMSNorm, q/k/v/o without biases, rotary embeddings
/// (rotate-half; llama.cpp's converter permutes q/k rows into its interleaved order), SwiGLU MLP.
public enum Llama: ModelFamilyDescription {
    public static let name = "llama"
    public static let hfArchitectures = ["LlamaForCausalLM"]
    public static let modelTypes = ["llama"]
    public static let ggufArchitecture = "llama"
    public static let layout = ModelLayout.decoder
    public static let ggufPermutesQK = true

    public static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws {
        try fields.requireActivation("hidden_act", "silu")
        // transformers' attention_bias puts biases on q, k, v and o; mlp_bias on the MLP's three.
        try fields.refuseTrue("attention_bias", "LLaMA linears without biases are supported")
        try fields.refuseTrue("mlp_bias", "LLaMA linears without biases are supported")
    }

    /// A Mistral with a window, as loramd writes it (`Mistral.writeGGUF`); llama.cpp's own
    /// converter drops the window, and its llama graph attends to every key.
    public static func readGGUF(_ keys: GGUFMetadataReader, into config: inout ModelConfig) throws {
        config.slidingWindow = try keys.optionalPositiveInt(Mistral.windowKey, limit: SizeLimits.positions)
    }

    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {
        object["attention_bias"] = false
        object["mlp_bias"] = false
        object["pretraining_tp"] = 1
    }

    public static let presets: [(name: String, config: [String: Any])] = []
}

/// Mistral (`MistralForCausalLM`): LLaMA's layer; `sliding_window`, when set, limits each query to
/// that many latest keys. llama.cpp converts it as `llama`, so its GGUF files load as LLaMA; loramd
/// writes the window as `llama.attention.sliding_window`, which llama.cpp does not apply (it
/// matters past the window only: 4096 tokens for Mistral-7B-v0.1, none for later versions).
public enum Mistral: ModelFamilyDescription {
    public static let name = "mistral"
    public static let hfArchitectures = ["MistralForCausalLM"]
    public static let modelTypes = ["mistral"]
    public static let ggufArchitecture = "llama"
    public static let layout = ModelLayout.decoder
    public static let ggufPermutesQK = true

    public static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws {
        try Llama.readConfig(fields, into: &config)
        config.slidingWindow = try fields.optionalPositiveInt("sliding_window")
    }

    static let windowKey = "llama.attention.sliding_window"

    public static func writeGGUF(_ config: ModelConfig, into writer: inout GGUFWriter) {
        if let window = config.slidingWindow { writer.set(windowKey, .uint32(UInt32(window))) }
    }

    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {
        object["sliding_window"] = config.slidingWindow.map { $0 as Any } ?? NSNull()
    }
}
