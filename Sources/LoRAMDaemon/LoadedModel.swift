import Foundation
import RPC
import Runtime

/// A model the client loaded: its weights, its tokenizer (when the directory has one), the ids
/// that end generation, and where it came from. Weights are read-only once loaded, so any number
/// of requests may use one model at the same time, each with a session of its own.
final class LoadedModel: LiveObject, @unchecked Sendable {
    let handle: String
    let model: LlamaModel
    let tokenizer: Tokenizer?
    let directory: URL
    /// config.json's, generation_config.json's and the tokenizer's EOS ids together.
    let eosTokenIds: Set<Int>
    let bytes: Int

    init(handle: String, model: LlamaModel, tokenizer: Tokenizer?, directory: URL, eosTokenIds: Set<Int>, bytes: Int) {
        self.handle = handle
        self.model = model
        self.tokenizer = tokenizer
        self.directory = directory
        self.eosTokenIds = eosTokenIds
        self.bytes = bytes
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
            ("layers", .int(Int64(c.layerCount))), ("hidden", .int(Int64(c.hiddenSize))),
            ("intermediate", .int(Int64(c.intermediateSize))), ("heads", .int(Int64(c.headCount))),
            ("kvHeads", .int(Int64(c.kvHeadCount))), ("headDim", .int(Int64(c.headDim))), ("vocab", .int(Int64(c.vocabSize))),
            ("tiedEmbeddings", .bool(c.tiedEmbeddings)), ("ropeTheta", .double(c.ropeTheta)), ("ropeScaling", scaling),
            ("maxPositionEmbeddings", .int(Int64(c.maxPositionEmbeddings))),
            // A structurally pruned model's widths differ per layer; the top-level ones are the original's.
            ("layerShapes", c.layers.allSatisfy({ $0 == .init(headCount: c.headCount, kvHeadCount: c.kvHeadCount, intermediateSize: c.intermediateSize) })
                ? .null : .array(c.layers.map {
                .object([("heads", .int(Int64($0.headCount))), ("kvHeads", .int(Int64($0.kvHeadCount))),
                         ("intermediate", .int(Int64($0.intermediateSize)))])
            })),
        ])
    }

    /// How the model was pruned from its original (nil for an original); saved and loaded with it.
    var pruning: PruningManifest? { model.pruning }

    var listing: JSONValue {
        .object([("modelId", .string(handle)), ("path", .string(directory.path)), ("parameters", .int(Int64(model.parameterCount))),
                 ("bytes", .int(Int64(bytes))), ("dtype", .string(model.isQuantized ? "nf4" : model.embedding.dtype.rawValue.lowercased())),
                 ("hasTokenizer", .bool(tokenizer != nil)), ("config", configSummary),
                 ("pruning", pruning.map { .object([("method", .string($0.method.rawValue)), ("ratio", .double($0.ratio))]) } ?? .null)])
    }

    /// The tokenizer, or FormatError when the checkpoint came without one.
    func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else {
            throw RPCError(.formatError, "Format error: \(directory.path) has no tokenizer.json",
                           hint: "Put the model's tokenizer.json beside config.json, or send token ids instead of text.",
                           data: [("file", .string("tokenizer.json")), ("problem", .string("missing"))])
        }
        return tokenizer
    }
}

extension Tokenizer: TextEncoding {}
