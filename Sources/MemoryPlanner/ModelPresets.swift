import Foundation

/// The LLaMA shapes the LoRAM paper counts with (its §3.2a table: head_dim 128, untied embeddings),
/// so a plan or a reduction ratio can be computed from a name alone, before any file exists. Other
/// families' presets are their published configs, in their family files (`ModelRegistry`), read by
/// the one config parser (`ModelConfig(json:)`), which reads every config.json the planner sees.
extension ModelShape {
    public static let llama2_7B = ModelShape(hidden: 4096, intermediate: 11008, layerCount: 32, heads: 32, kvHeads: 32, vocab: 32000)
    public static let llama2_13B = ModelShape(hidden: 5120, intermediate: 13824, layerCount: 40, heads: 40, kvHeads: 40, vocab: 32000)
    public static let llama2_70B = ModelShape(hidden: 8192, intermediate: 28672, layerCount: 80, heads: 64, kvHeads: 8, vocab: 32000)
    public static let llama31_8B = ModelShape(hidden: 4096, intermediate: 14336, layerCount: 32, heads: 32, kvHeads: 8, vocab: 128256)
    public static let llama31_70B = ModelShape(hidden: 8192, intermediate: 28672, layerCount: 80, heads: 64, kvHeads: 8, vocab: 128256)

    /// Every preset by its lowercase name, in size order per family.
    public static let presets: [(name: String, shape: ModelShape)] = [
        ("llama-2-7b", llama2_7B), ("llama-2-13b", llama2_13B), ("llama-2-70b", llama2_70B),
        ("llama-3.1-8b", llama31_8B), ("llama-3.1-70b", llama31_70B),
    ]

    /// The preset called `name` ("LLaMA-2-13B" and "llama-2-13b" alike), or nil.
    public static func preset(named name: String) -> ModelShape? {
        let key = name.lowercased()
        return presets.first { $0.name == key }?.shape
    }
}
