import Foundation

/// A byte-level BPE tokenizer (GPT-2, LLaMA-3 style) as GGUF's `tokenizer.ggml.*` metadata, the
/// way llama.cpp's converter writes it: model `gpt2`, tokens in id order as their byte-level
/// strings, merges as "left right", a type per token (1 normal, 3 control, 4 user-defined), the
/// pre-tokenizer's name, and the special ids. Other kinds of tokenizer are refused by name.
extension Tokenizer {
    public struct GGUFExportError: Error, CustomStringConvertible {
        public let description: String
    }

    public func ggufMetadata() throws -> [(key: String, value: GGUFValue)] {
        let json = TokenizerJSON(file: "tokenizer.json")
        let root = try json.parse(sourceJSON)
        let pre = try json.optional(root, "pre_tokenizer").map { try PreTokenizer.parse($0, "pre_tokenizer", json) }
        let preName: String
        switch pre {
        case .byteLevel(addPrefixSpace: false, useRegex: true):
            preName = "gpt2"
        case .sequence(let steps) where steps.count == 2:
            guard case .split = steps[0], case .byteLevel(addPrefixSpace: false, useRegex: false) = steps[1] else { fallthrough }
            preName = "llama-bpe"
        default:
            throw GGUFExportError(description: "only byte-level BPE tokenizers (GPT-2 or LLaMA-3 pre-tokenizers) can be written as GGUF metadata")
        }
        let modelObject = try json.object(json.optional(root, "model"), "model")
        let mergeList = try json.array(json.optional(modelObject, "merges") ?? [Any](), "model.merges")
        let merges: [GGUFValue] = try mergeList.enumerated().map { index, entry in
            if let line = entry as? String { return .string(line) }
            let pair = try json.array(entry, "model.merges[\(index)]")
            guard pair.count == 2 else { throw json.error("model.merges[\(index)]", "expected two strings") }
            return .string(try json.string(pair[0], "model.merges[\(index)][0]") + " " + json.string(pair[1], "model.merges[\(index)][1]"))
        }
        var tokens: [GGUFValue] = []
        var types: [GGUFValue] = []
        for id in 0..<vocabularySize {
            guard let bytes = tokenBytes(for: id) else {
                throw GGUFExportError(description: "id \(id) has no token; GGUF vocabularies are dense")
            }
            tokens.append(.string(bytes))
            let isAdded = added.stringById[id] != nil
            types.append(.int32(specialTokenIds.contains(id) ? 3 : isAdded ? 4 : 1))
        }
        var out: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(preName)),
            ("tokenizer.ggml.tokens", .array(.string, tokens)), ("tokenizer.ggml.token_type", .array(.int32, types)),
            ("tokenizer.ggml.merges", .array(.string, merges)),
        ]
        if let bosTokenId { out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bosTokenId)))) }
        if let eosTokenId { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eosTokenId)))) }
        if let unknown = id(for: "<unk>") { out.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
        let surrounding: (before: [Int], after: [Int]) = postProcessor?.surroundingIds ?? ([], [])
        out.append(("tokenizer.ggml.add_bos_token", .bool(!surrounding.before.isEmpty)))
        out.append(("tokenizer.ggml.add_eos_token", .bool(!surrounding.after.isEmpty)))
        return out
    }
}
