import Foundation
import RPC
import Runtime

/// A model the client loaded: its weights, its tokenizer (when the checkpoint has one), the ids
/// that end generation, and where it came from (a Hugging Face folder or a GGUF file). Weights are read-only once loaded, so any number
/// of requests may use one model at the same time, each with a session of its own.
final class LoadedModel: LiveObject, @unchecked Sendable {
    let handle: String
    let model: DecoderModel
    let tokenizer: Tokenizer?
    /// The folder or GGUF file it was loaded from.
    let source: URL
    let format: Format
    let chatTemplate: String?
    /// A GGUF's `tokenizer.*` metadata as it was, for saving back to GGUF unchanged.
    let ggufTokenizerMetadata: [(key: String, value: GGUFValue)]?
    /// config.json's, generation_config.json's and the tokenizer's EOS ids together.
    let eosTokenIds: Set<Int>
    let bytes: Int

    enum Format: String { case huggingFace, gguf }

    init(handle: String, model: DecoderModel, tokenizer: Tokenizer?, source: URL, format: Format, chatTemplate: String?,
         eosTokenIds: Set<Int>, bytes: Int, ggufTokenizerMetadata: [(key: String, value: GGUFValue)]? = nil) {
        self.ggufTokenizerMetadata = ggufTokenizerMetadata
        self.handle = handle
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.format = format
        self.chatTemplate = chatTemplate
        self.eosTokenIds = eosTokenIds
        self.bytes = bytes
    }

    /// A model made from this one (pruned, quantized, merged, trained): same tokenizer, origin and stop ids.
    func derived(handle: String, model: DecoderModel, bytes: Int) -> LoadedModel {
        LoadedModel(handle: handle, model: model, tokenizer: tokenizer, source: source, format: format, chatTemplate: chatTemplate,
                    eosTokenIds: eosTokenIds, bytes: bytes, ggufTokenizerMetadata: ggufTokenizerMetadata)
    }

    var configSummary: JSONValue {
        let c = model.config
        var scaling: JSONValue = .null
        switch c.ropeScaling {
        case .none: break
        case .linear(let factor): scaling = .object([("type", .string("linear")), ("factor", .double(factor))])
        case .llama3(let factor, let low, let high, let original):
            scaling = .object([("type", .string("llama3")), ("factor", .double(factor)), ("lowFreqFactor", .double(low)),
                               ("highFreqFactor", .double(high)), ("originalMaxPositionEmbeddings", .int(Int64(original)))])
        case .divisors(let divisors):
            scaling = .object([("type", .string("divisors")), ("divisors", .array(divisors.map { .double(Double($0)) }))])
        }
        return .object([
            ("family", .string(c.family.name)), ("slidingWindow", c.slidingWindow.map { .int(Int64($0)) } ?? .null),
            ("layers", .int(Int64(c.layerCount))), ("hidden", .int(Int64(c.hiddenSize))),
            ("intermediate", .int(Int64(c.intermediateSize))), ("heads", .int(Int64(c.headCount))),
            ("kvHeads", .int(Int64(c.kvHeadCount))), ("headDim", .int(Int64(c.headDim))), ("vocab", .int(Int64(c.vocabSize))),
            ("tiedEmbeddings", .bool(c.tiedEmbeddings)), ("ropeTheta", .double(c.ropeTheta)), ("ropeScaling", scaling),
            ("maxPositionEmbeddings", .int(Int64(c.maxPositionEmbeddings))),
            // A structurally pruned model's widths differ per layer; the top-level ones are the original's.
            ("layerShapes", c.layers.allSatisfy({ $0 == .init(heads: c.headCount, kvHeads: c.kvHeadCount, intermediate: c.intermediateSize) })
                ? .null : .array(c.layers.map {
                .object([("heads", .int(Int64($0.heads))), ("kvHeads", .int(Int64($0.kvHeads))),
                         ("intermediate", .int(Int64($0.intermediate)))])
            })),
        ])
    }

    /// The files that travel with the weights when the model is saved as a Hugging Face folder:
    /// a folder's tokenizer and generation settings as they are; for a GGUF, the tokenizer.json and
    /// tokenizer_config.json its metadata describes.
    func companionFiles() throws -> [(name: String, data: Data)] {
        switch format {
        case .huggingFace:
            return ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json", "chat_template.jinja"].compactMap { name in
                (try? RegularFile.contents(source.appendingPathComponent(name))).map { (name, $0) }
            }
        case .gguf:
            return tokenizer?.huggingFaceFiles(chatTemplate: chatTemplate, embeddingRows: model.config.vocabSize) ?? []
        }
    }

    /// How the model was pruned from its original (nil for an original); saved and loaded with it.
    var pruning: PruningManifest? { model.pruning }

    var listing: JSONValue {
        .object([("modelId", .string(handle)), ("path", .string(source.path)), ("format", .string(format.rawValue)), ("parameters", .int(Int64(model.parameterCount))),
                 ("bytes", .int(Int64(bytes))), ("dtype", .string(model.isQuantized ? "nf4" : model.embedding.dtype.rawValue.lowercased())),
                 ("hasTokenizer", .bool(tokenizer != nil)), ("config", configSummary),
                 ("pruning", pruning.map { .object([("method", .string($0.method.rawValue)), ("ratio", .double($0.ratio))]) } ?? .null)])
    }

    /// The tokenizer, or FormatError when the checkpoint came without one.
    func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else {
            let file = format == .gguf ? source.lastPathComponent : "tokenizer.json"
            throw RPCError(.formatError, "Format error: \(source.path) has no tokenizer",
                           hint: format == .gguf ? "This GGUF carries no tokenizer.ggml.* metadata; send token ids instead of text."
                                                 : "Put the model's tokenizer.json beside config.json, or send token ids instead of text.",
                           data: [("file", .string(file)), ("problem", .string("missing"))])
        }
        return tokenizer
    }
}

extension Tokenizer: TextEncoding {}
