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
            self.location = location
        } else if manager.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            self.files = [file]
            self.location = file.tensors.mapValues { _ in file }
        } else {
            throw FormatError(file: Self.singleFileName, "no \(Self.singleFileName) or \(Self.indexFileName) in \(url.path)")
        }
    }

    public var tensorNames: [String] { location.keys.sorted() }
    public var fileNames: [String] { files.map(\.fileName) }

    public func info(_ name: String) -> SafetensorsFile.TensorInfo? { location[name]?.tensors[name] }

    /// The file holding `name`, for error messages.
    public func fileName(of name: String) -> String { location[name]?.fileName ?? Self.singleFileName }

    /// The raw bytes of tensor `name`; valid while this object lives.
    public func bytes(of name: String) -> UnsafeRawBufferPointer? {
        guard let file = location[name], let info = file.tensors[name] else { return nil }
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
