import Foundation
import MemoryPlanner

/// Every family loramd runs, found by what a file says it is. Adding a family is a file and a
/// line here.
public enum ModelRegistry {
    public static let families: [any ModelFamilyDescription.Type] = [
        Llama.self,
        Mistral.self,
        Qwen2.self,
        Qwen3.self,
        Gemma3.self,
    ]

    public static var supportedNames: String { families.map { $0.name }.joined(separator: ", ") }

    /// The family of a config.json: by `architectures` when it lists one we run, else by
    /// `model_type`; a file naming neither (old LLaMA exports) is LLaMA.
    public static func family(architectures: [String]?, modelType: String?, file: String) throws -> ModelFamily {
        if let architectures, !architectures.isEmpty {
            if let found = families.first(where: { family in architectures.contains { family.hfArchitectures.contains($0) } }) {
                return ModelFamily(found)
            }
            throw FormatError(file: file, "architecture \(architectures.joined(separator: ", ")) is not supported; loramd runs \(hfNames)")
        }
        guard let modelType else { return ModelFamily(Llama.self) }
        if let found = families.first(where: { $0.modelTypes.contains(modelType) }) { return ModelFamily(found) }
        throw FormatError(file: file, "model_type '\(modelType)' is not supported; loramd runs \(supportedNames)")
    }

    /// The family of a GGUF file's `general.architecture`.
    public static func family(ggufArchitecture architecture: String, file: String) throws -> ModelFamily {
        if let found = families.first(where: { $0.ggufArchitecture == architecture }) { return ModelFamily(found) }
        // Mistral's files are llama's: each architecture named once.
        let known = families.map { $0.ggufArchitecture }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        throw FormatError(file: file, "general.architecture is '\(architecture)'; loramd runs \(known.joined(separator: ", "))")
    }

    /// `object` itself, or the text model's config of a multimodal checkpoint a family runs.
    static func textModelConfig(_ object: [String: Any]) -> [String: Any] {
        families.lazy.compactMap { $0.textModelConfig(object) }.first ?? object
    }

    public static func family(named name: String) -> ModelFamily? {
        families.first { $0.name == name }.map(ModelFamily.init)
    }

    private static var hfNames: String { families.flatMap { $0.hfArchitectures }.joined(separator: ", ") }

    /// Every preset name: the paper's LLaMA shapes (`ModelShape.presets`), then each family's.
    public static var presetNames: [String] {
        ModelShape.presets.map(\.name) + families.flatMap { $0.presets.map(\.name) }
    }

    /// The shape of preset `name` (any case), read from its published config through the one
    /// config parser; nil when no preset has that name.
    public static func presetShape(named name: String) throws -> ModelShape? {
        if let shape = ModelShape.preset(named: name) { return shape }
        let key = name.lowercased()
        guard let config = families.lazy.flatMap({ $0.presets }).first(where: { $0.name == key })?.config else { return nil }
        return try ModelConfig(json: try JSONSerialization.data(withJSONObject: config)).modelShape
    }
}
