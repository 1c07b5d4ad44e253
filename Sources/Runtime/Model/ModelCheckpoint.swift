import Foundation

/// Where a model's weights come from: a Hugging Face folder (config.json, safetensors, tokenizer.json)
/// or one GGUF file (config, weights, tokenizer and chat template all inside). Opening reads and
/// validates the headers only; `plannedBytes` is what loading will hold, so it can be charged
/// before any tensor is read.
public enum ModelCheckpoint {
    case huggingFace(directory: URL, config: ModelConfig, weights: CheckpointDirectory)
    case gguf(GGUFFile, config: ModelConfig)

    /// A folder is a Hugging Face checkpoint; a regular file must be GGUF. Anything else (a FIFO,
    /// a device) is refused before it is opened, so a load can never block on it.
    public static func open(_ url: URL) throws -> ModelCheckpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw FormatError(file: url.lastPathComponent, "does not exist")
        }
        if isDirectory.boolValue {
            let config = try ModelConfig(directory: url), weights = try CheckpointDirectory(url: url)
            // The files must hold the config's tensors before anything is planned from its widths.
            try DecoderModel.checkTensorShapes(config: config, checkpoint: weights)
            return .huggingFace(directory: url, config: config, weights: weights)
        }
        let file = try GGUFFile(url: url)
        return .gguf(file, config: try DecoderModel.config(gguf: file))
    }

    public var url: URL {
        switch self {
        case .huggingFace(let directory, _, _): return directory
        case .gguf(let file, _): return file.url
        }
    }

    public var config: ModelConfig {
        switch self {
        case .huggingFace(_, let config, _), .gguf(_, let config): return config
        }
    }

    public var isGGUF: Bool {
        if case .gguf = self { return true }
        return false
    }

    /// The storage dtype when the request names none: as stored for safetensors; bf16 for GGUF,
    /// whose quantized blocks have no float type of their own.
    public func storageDType(_ requested: TensorDType?) -> TensorDType? {
        if isGGUF { return requested ?? .bf16 }
        return requested
    }

    public func plannedBytes(dtype requested: TensorDType?) -> Int {
        switch self {
        case .huggingFace(_, let config, let weights):
            return DecoderModel.plannedBytes(config: config, checkpoint: weights, dtype: requested)
        case .gguf(let file, let config):
            return DecoderModel.plannedBytes(gguf: file, config: config, dtype: storageDType(requested)!)
        }
    }

    public func loadModel(dtype requested: TensorDType?) throws -> DecoderModel {
        switch self {
        case .huggingFace(_, let config, let weights):
            return try DecoderModel.load(config: config, checkpoint: weights, dtype: requested)
        case .gguf(let file, let config):
            return try DecoderModel.load(gguf: file, config: config, dtype: storageDType(requested)!)
        }
    }

    /// The tokenizer, when the checkpoint has one (tokenizer.json beside config.json, or
    /// `tokenizer.ggml.*` metadata).
    /// Its ids must all be rows of the model's embedding: checked here, so a mismatched tokenizer
    /// fails the load (FormatError) instead of a later `generate` on an id the client never sent.
    public func tokenizer() throws -> Tokenizer? {
        switch self {
        case .huggingFace(let directory, let config, _):
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) else { return nil }
            let tokenizer = try Tokenizer(directory: directory)
            guard tokenizer.vocabularySize <= config.vocabSize else {
                throw FormatError(file: "tokenizer.json", "the tokenizer has ids up to \(tokenizer.vocabularySize - 1), past the model's vocabulary of \(config.vocabSize) (config.json vocab_size): it belongs to another model")
            }
            return tokenizer
        case .gguf(let file, let config):
            guard file.metadata["tokenizer.ggml.model"] != nil else { return nil }
            // The file's own token list; the class defaults transformers adds after it (a gpt2
            // file's "<|endoftext|>") may get an id past the embedding, as they do there.
            if case .array(_, let tokens)? = file.metadata["tokenizer.ggml.tokens"], tokens.count > config.vocabSize {
                throw FormatError(file: file.url.lastPathComponent, "tokenizer.ggml.tokens has \(tokens.count) tokens, more than the model's vocabulary of \(config.vocabSize) (token_embd.weight rows): it belongs to another model")
            }
            return try Tokenizer(ggufMetadata: file.metadata, fileName: file.url.lastPathComponent)
        }
    }

    /// A GGUF's `tokenizer.*` metadata in file order (nil for a folder).
    public var ggufTokenizerMetadata: [(key: String, value: GGUFValue)]? {
        guard case .gguf(let file, _) = self else { return nil }
        return file.metadataKeys.filter { $0.hasPrefix("tokenizer.") }.map { ($0, file.metadata[$0]!) }
    }

    /// The chat template (Jinja text) the checkpoint ships: `tokenizer.chat_template` in a GGUF,
    /// `chat_template` in tokenizer_config.json (or chat_template.jinja) for a folder.
    public var chatTemplate: String? {
        switch self {
        case .gguf(let file, _):
            return file.metadata["tokenizer.chat_template"]?.stringValue
        case .huggingFace(let directory, _, _):
            if let data = try? RegularFile.contents(directory.appendingPathComponent("chat_template.jinja")) {
                return String(decoding: data, as: UTF8.self)
            }
            guard let data = try? RegularFile.contents(directory.appendingPathComponent("tokenizer_config.json")),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return nil }
            return object["chat_template"] as? String
        }
    }
}
