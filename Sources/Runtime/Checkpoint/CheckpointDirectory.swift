import Foundation

/// The weights of a Hugging Face checkpoint directory: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`. Every shard is opened and validated when this is created, so a
/// missing or broken shard fails the load before any tensor is read.
public final class CheckpointDirectory: @unchecked Sendable {
    public let url: URL
    private let files: [SafetensorsFile]
    /// Tensor name → the file that holds it.
    private let location: [String: SafetensorsFile]

    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    public init(url: URL) throws {
        self.url = url
        let manager = FileManager.default
        let index = url.appendingPathComponent(Self.indexFileName)
        let single = url.appendingPathComponent(Self.singleFileName)
        if manager.fileExists(atPath: index.path) {
            let weightMap = try Self.readIndex(index)
            var opened: [String: SafetensorsFile] = [:]
            var location: [String: SafetensorsFile] = [:]
            for shardName in Set(weightMap.values).sorted() {
                // Shard names are file names inside the directory, never paths out of it.
                guard !shardName.contains("/"), shardName != "..", !shardName.isEmpty else {
                    throw FormatError(file: Self.indexFileName, "shard name '\(shardName)' is not a file name in the checkpoint directory")
                }
                let shardURL = url.appendingPathComponent(shardName)
                guard manager.fileExists(atPath: shardURL.path) else {
                    throw FormatError(file: Self.indexFileName, "names the shard \(shardName), which does not exist in \(url.path)")
                }
                opened[shardName] = try SafetensorsFile(url: shardURL)
            }
            for (tensor, shardName) in weightMap {
                let shard = opened[shardName]!
                guard shard.tensors[tensor] != nil else {
                    throw FormatError(file: shardName, "the index places tensor \(tensor) here, but the shard does not contain it")
                }
                location[tensor] = shard
            }
            self.files = opened.keys.sorted().map { opened[$0]! }
            self.location = Self.languageModelAliases(location)
        } else if manager.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            self.files = [file]
            self.location = Self.languageModelAliases(file.tensors.mapValues { _ in file })
        } else {
            throw FormatError(file: Self.singleFileName, "no \(Self.singleFileName) or \(Self.indexFileName) in \(url.path)")
        }
    }

    /// A multimodal checkpoint's text model (Gemma 3 4B-27B's Gemma3ForConditionalGeneration) is
    /// read under the decoder's own names: `language_model.model.X` (transformers before 4.52) and
    /// `model.language_model.X` (after) also answer to `model.X`, and `language_model.lm_head.weight`
    /// to `lm_head.weight`. The vision tower's tensors are never asked for.
    static func languageModelAliases(_ location: [String: SafetensorsFile]) -> [String: SafetensorsFile] {
        guard location["model.embed_tokens.weight"] == nil else { return location }
        var out = location
        for (name, file) in location {
            for (prefix, canonical) in [("language_model.model.", "model."), ("model.language_model.", "model."),
                                        ("language_model.lm_head.", "lm_head.")] where name.hasPrefix(prefix) {
                out[canonical + name.dropFirst(prefix.count)] = file
            }
        }
        return out
    }

    public var tensorNames: [String] { location.keys.sorted() }
    public var fileNames: [String] { files.map(\.fileName) }

    public func info(_ name: String) -> SafetensorsFile.TensorInfo? { location[name].flatMap { $0.tensors[fileName(name, in: $0)] } }

    /// The name `name` has in `file` (itself, or the multimodal one it aliases).
    private func fileName(_ name: String, in file: SafetensorsFile) -> String {
        if file.tensors[name] != nil { return name }
        let rest = name.hasPrefix("model.") ? String(name.dropFirst("model.".count)) : name
        return ["language_model.model." + rest, "model.language_model." + rest, "language_model." + name].first { file.tensors[$0] != nil } ?? name
    }

    /// The file holding `name`, for error messages.
    public func fileName(of name: String) -> String { location[name]?.fileName ?? Self.singleFileName }

    /// The raw bytes of tensor `name`; valid while this object lives.
    public func bytes(of name: String) -> UnsafeRawBufferPointer? {
        guard let file = location[name], let info = file.tensors[fileName(name, in: file)] else { return nil }
        return file.bytes(of: info)
    }

    private static func readIndex(_ url: URL) throws -> [String: String] {
        struct Index: Decodable { var weight_map: [String: String] }
        let data = try RegularFile.contents(url)
        do {
            return try JSONDecoder().decode(Index.self, from: data).weight_map
        } catch {
            throw FormatError(file: indexFileName, "not a valid index: it needs a weight_map object from tensor names to shard file names")
        }
    }
}
