import Foundation

/// What may already be at the path an output is written to. An output replaces an earlier output
/// of its kind (or an empty folder, or nothing), never a folder or file of something else: a save
/// into the wrong folder must not quietly replace someone's config.json.
public enum OutputRule: Sendable {
    /// Any file (reports, generated text, datasets).
    case anyFile
    /// A Hugging Face model folder: config.json with model.safetensors or its index.
    case modelFolder
    /// A PEFT adapter folder: adapter_config.json.
    case adapterFolder
    /// A training save (train/save, train/run's checkpoint-N and final): state.json,
    /// parameters.safetensors or optimizer.safetensors (an older, torn save counts too).
    case trainingState
    /// A GGUF file: an existing file must start with GGUF's magic (or be empty).
    case ggufFile

    /// Throws OutputConflict when `url` holds something this output may not replace.
    public func check(_ url: URL) throws {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { return }
        let isDirectory = status.st_mode & S_IFMT == S_IFDIR
        switch self {
        case .anyFile, .ggufFile:
            if isDirectory { throw OutputConflict(path: url.path, problem: "is a folder; give a file path") }
            guard self == .ggufFile, status.st_size > 0, !GGUFFile.hasMagic(url) else { return }
            throw OutputConflict(path: url.path, problem: "exists and is not a GGUF file; loramd replaces only a GGUF file there")
        case .modelFolder, .adapterFolder, .trainingState:
            guard isDirectory else { throw OutputConflict(path: url.path, problem: "is a file, not a folder") }
            let names = Set(((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
                .filter { !$0.hasPrefix(TemporaryOutput.prefix) })
            guard !names.isEmpty, !recognizes(names) else { return }
            throw OutputConflict(path: url.path, problem: "is a folder that holds something other than \(kind); loramd replaces only an empty folder or an earlier \(kind)")
        }
    }

    private func recognizes(_ names: Set<String>) -> Bool {
        switch self {
        case .modelFolder:
            return names.contains("config.json") && (names.contains(CheckpointDirectory.singleFileName) || names.contains(CheckpointDirectory.indexFileName))
        case .adapterFolder: return names.contains("adapter_config.json")
        case .trainingState: return !names.isDisjoint(with: ["state.json", "parameters.safetensors", "optimizer.safetensors"])
        case .anyFile, .ggufFile: return true
        }
    }

    private var kind: String {
        switch self {
        case .modelFolder: return "model (config.json with model.safetensors)"
        case .adapterFolder: return "adapter (adapter_config.json)"
        case .trainingState: return "training save (state.json)"
        case .anyFile: return "file"
        case .ggufFile: return "GGUF file"
        }
    }
}

/// An output path that holds something the output may not replace (see OutputRule).
public struct OutputConflict: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String
    public var description: String { "\(path) \(problem)" }
}
