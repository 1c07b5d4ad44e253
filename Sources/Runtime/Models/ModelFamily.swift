import Foundation
import MemoryPlanner

/// What a model family is to loramd, written once in its own file (`Llama.swift`, `Qwen2.swift`,
/// ...): the names config.json and GGUF files give it, its tensors (`layout`: names, shapes,
/// roles and slice rules, which loading, saving, planning, training, pruning and the adapters'
/// names all read), and the config fields it has beyond the ones every decoder shares. The layer
/// itself is `DecoderBlock`: the stages a layout's tensors imply (a bias after its linear, an
/// RMSNorm per head of q and k) run where the family has them, each op's backward beside its
/// forward, so a family adds a file of data and, where it is the first to need one, an op.
public protocol ModelFamilyDescription {
    /// The registry key users see ("llama", "qwen2").
    static var name: String { get }
    /// config.json `architectures` entries it answers to; the first is written.
    static var hfArchitectures: [String] { get }
    /// config.json `model_type` values it answers to; the first is written.
    static var modelTypes: [String] { get }
    /// GGUF `general.architecture` (also the prefix of its metadata keys).
    static var ggufArchitecture: String { get }
    static var layout: ModelLayout { get }
    /// llama.cpp's converter reorders q_proj/k_proj rows into ggml's interleaved rotary order
    /// (LLaMA's rope); families with NEOX rope (Qwen2, Qwen3, Gemma 3) keep transformers' order.
    static var ggufPermutesQK: Bool { get }
    /// Added to norm weights read from transformers' files and taken off when writing them: the
    /// runtime holds the multiplier (Gemma's (1 + w) norms: 1; others 0).
    static var hfNormOffset: Float { get }
    /// Reads and checks the family's own config.json fields into `config`; what loramd would
    /// compute differently from transformers is a FormatError naming the field.
    static func readConfig(_ fields: ConfigFields, into config: inout ModelConfig) throws
    /// The same from GGUF metadata (keys under `ggufArchitecture.`).
    static func readGGUF(_ keys: GGUFMetadataReader, into config: inout ModelConfig) throws
    /// The family's own fields of a config.json loramd writes.
    static func writeConfig(_ config: ModelConfig, into object: inout [String: Any])
    /// The family's own metadata of a GGUF file loramd writes (the keys every decoder has are written already).
    static func writeGGUF(_ config: ModelConfig, into writer: inout GGUFWriter)
    /// Published configs of its big members, for plans by name (`memory/plan {model: {preset}}`).
    static var presets: [(name: String, config: [String: Any])] { get }
    /// A multimodal checkpoint's config.json, when its text model is this family's: the text
    /// model's fields (its defaults filled in as transformers fills them); nil when it is not.
    static func textModelConfig(_ object: [String: Any]) -> [String: Any]?
    /// config.json fields a random model of the family (`ModelMaker`) gets beyond its widths, so
    /// that it exercises what the family has (Gemma 3: a window short enough to matter).
    static var makerFields: [String: Any] { get }
}

extension ModelFamilyDescription {
    public static var hfNormOffset: Float { 0 }
    public static func readGGUF(_ keys: GGUFMetadataReader, into config: inout ModelConfig) throws {}
    public static func writeConfig(_ config: ModelConfig, into object: inout [String: Any]) {}
    public static func writeGGUF(_ config: ModelConfig, into writer: inout GGUFWriter) {}
    public static var presets: [(name: String, config: [String: Any])] { [] }
    public static var makerFields: [String: Any] { [:] }
    public static func textModelConfig(_ object: [String: Any]) -> [String: Any]? { nil }
}

/// A family as a value a config carries: equal when the names are.
public struct ModelFamily: Equatable, Sendable, CustomStringConvertible {
    public let type: any ModelFamilyDescription.Type

    public init(_ description: any ModelFamilyDescription.Type) { type = description }

    public var name: String { type.name }
    public var description: String { name }
    public var layout: ModelLayout { type.layout }
    public var ggufPermutesQK: Bool { type.ggufPermutesQK }
    public var hfArchitecture: String { type.hfArchitectures[0] }
    public var hfNormOffset: Float { type.hfNormOffset }
    public var modelType: String { type.modelTypes[0] }
    public var ggufArchitecture: String { type.ggufArchitecture }

    public static func == (a: ModelFamily, b: ModelFamily) -> Bool { a.name == b.name }

    /// `headDim` for the tensors llama.cpp's converter stores in its interleaved rotary order
    /// (q and k, their biases too) where the family permutes them; nil for every other tensor.
    public func ggufRotaryHeadDim(_ role: TensorSpec.Role, headDim: Int) -> Int? {
        ggufPermutesQK && [.linear(.q), .linear(.k), .bias(.q), .bias(.k)].contains(role) ? headDim : nil
    }

    /// A 1-D tensor of role `role` as the runtime holds it, from transformers' values (norms
    /// gain `hfNormOffset`), and back.
    public func runtimeValues(_ role: TensorSpec.Role, _ values: [Float]) -> [Float] {
        offsets(role) ? values.map { $0 + hfNormOffset } : values
    }
    public func hfValues(_ role: TensorSpec.Role, _ values: [Float]) -> [Float] {
        offsets(role) ? values.map { $0 - hfNormOffset } : values
    }
    private func offsets(_ role: TensorSpec.Role) -> Bool {
        guard hfNormOffset != 0 else { return false }
        switch role {
        case .norm, .headNorm, .finalNorm: return true
        default: return false
        }
    }
}
