import Foundation

/// What may already be at the path an output is written to, one rule for every writer (daemon
/// and command line, files and folders). An output replaces an earlier output of its kind (or an
/// empty folder or file, or nothing), never a folder or file of something else: a save into the
/// wrong folder must not quietly replace someone's config.json. Links are never followed at the
/// final component, of the path or of the folder its temporary is made in: a planted link would
/// otherwise let one user's save replace another's file. Nor is anything but a regular file or a
/// folder replaced (a FIFO, a device node, a socket), which a daemon run as root must not do.
public enum OutputRule: Sendable {
    /// Any regular file (reports, generated text, datasets, pictures).
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
    /// A folder other outputs are written into (train/run's and loram/run's outDir, make-dataset's
    /// --out): a folder or nothing, never a link; what is inside is each output's own rule.
    case outputFolder

    /// Throws OutputConflict when `url`, or the folder its temporary is made in, holds something
    /// this output may not replace.
    public func check(_ url: URL) throws {
        try Self.checkParent(of: url)
        guard let type = FileType.of(url) else { return }
        if type == S_IFLNK { throw OutputConflict(path: url.path, problem: "is a symbolic link; loramd never writes through a link, give the real path") }
        switch self {
        case .anyFile, .ggufFile:
            if type == S_IFDIR { throw OutputConflict(path: url.path, problem: "is a folder; give a file path") }
            guard type == S_IFREG else { throw OutputConflict(path: url.path, problem: "is \(FileType.describe(type)); loramd replaces only a regular file") }
            guard self == .ggufFile, Self.size(url) > 0, !GGUFFile.hasMagic(url, followLinks: false) else { return }
            throw OutputConflict(path: url.path, problem: "exists and is not a GGUF file; loramd replaces only a GGUF file there")
        case .modelFolder, .adapterFolder, .trainingState, .outputFolder:
            guard type == S_IFDIR else {
                throw OutputConflict(path: url.path, problem: type == S_IFREG ? "is a file, not a folder" : "is \(FileType.describe(type)), not a folder")
            }
            guard self != .outputFolder else { return }
            let names = Set(((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [])
                .filter { !$0.hasPrefix(TemporaryOutput.prefix) })
            guard !names.isEmpty, !recognizes(names) else { return }
            throw OutputConflict(path: url.path, problem: "is a folder that holds something other than \(kind); loramd replaces only an empty folder or an earlier \(kind)")
        }
    }

    /// The folder an output's temporary is made in and renamed from may not be a link to one
    /// elsewhere. (A path through a file is the file system's refusal, IOError, when the write
    /// makes its folders.)
    static func checkParent(of url: URL) throws {
        let parent = url.deletingLastPathComponent()
        guard parent.path != url.path, FileType.of(parent) == S_IFLNK else { return }
        throw OutputConflict(path: url.path, problem: "is in \(parent.path), a symbolic link; loramd never writes through a link, give the real folder")
    }

    private static func size(_ url: URL) -> Int {
        var status = stat()
        return lstat(url.path, &status) == 0 ? Int(status.st_size) : 0
    }

    private func recognizes(_ names: Set<String>) -> Bool {
        switch self {
        case .modelFolder:
            return names.contains("config.json") && (names.contains(CheckpointDirectory.singleFileName) || names.contains(CheckpointDirectory.indexFileName))
        case .adapterFolder: return names.contains("adapter_config.json")
        case .trainingState: return !names.isDisjoint(with: ["state.json", "parameters.safetensors", "optimizer.safetensors"])
        case .anyFile, .ggufFile, .outputFolder: return true
        }
    }

    private var kind: String {
        switch self {
        case .modelFolder: return "model (config.json with model.safetensors)"
        case .adapterFolder: return "adapter (adapter_config.json)"
        case .trainingState: return "training save (state.json)"
        case .anyFile: return "file"
        case .ggufFile: return "GGUF file"
        case .outputFolder: return "output folder"
        }
    }
}

/// An output path that holds something the output may not replace (see OutputRule).
public struct OutputConflict: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String
    public var description: String { "\(path) \(problem)" }
}
