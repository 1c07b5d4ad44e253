import Foundation

/// Makes working tokenizers for the random test models `loramd make-model` builds (nothing can be
/// downloaded here): a GPT-2 / LLaMA-3 style byte-level BPE trained on a corpus, written as a
/// tokenizer.json that both this runtime and the Python `tokenizers` library load identically.
public enum TokenizerBuilder {
    static let specialTokens = ["<unk>", "<s>", "</s>"]

    /// A byte-level BPE tokenizer.json (ByteLevel pre-tokenizer with the GPT-2 regex, ByteLevel
    /// decoder, TemplateProcessing adding `<s>`) with exactly `vocabularySize` ids: 0, 1, 2 are
    /// `<unk>`, `<s>`, `</s>` (special added tokens, also in the model vocabulary), then the 256
    /// byte tokens in the order of their printable stand-ins (as tokenizers' trainer orders its
    /// alphabet), then the tokens of merges learned on `corpus` until the size is reached.
    /// Throws `TokenizerBuilderError` when the size is below 259 or the corpus runs out of pairs.
    public static func byteLevelBPE(corpus: String, vocabularySize: Int) throws -> Data {
        let minimum = specialTokens.count + 256
        guard vocabularySize >= minimum else {
            throw TokenizerBuilderError.vocabularyTooSmall(requested: vocabularySize, minimum: minimum)
        }
        let alphabet = ByteLevelAlphabet.scalarForByte.enumerated()
            .sorted { $0.element.value < $1.element.value }
        var tokens = specialTokens.map { Array($0.utf8) }
        var idForByte = [Int32](repeating: 0, count: 256)
        for (byte, scalar) in alphabet {
            idForByte[byte] = Int32(tokens.count)
            tokens.append(Array(String(scalar).utf8))
        }

        var counts: [[UInt8]: Int] = [:]
        let text = Array(corpus.utf8)
        for range in SplitRegex.gpt2.matches(in: text) { counts[Array(text[range]), default: 0] += 1 }
        let words = counts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            .map { (symbols: $0.key.map { idForByte[Int($0)] }, count: $0.value) }

        var trainer = BPETrainer(tokens: tokens, words: words)
        guard trainer.train(until: vocabularySize) else {
            throw TokenizerBuilderError.corpusExhausted(requested: vocabularySize, reached: trainer.tokens.count)
        }
        return Data(tokenizerJSON(tokens: trainer.tokens, merges: trainer.merges).utf8)
    }

    private static func tokenizerJSON(tokens: [[UInt8]], merges: [(Int32, Int32)]) -> String {
        func quotedToken(_ bytes: [UInt8]) -> String { JSONStringLiteral.quote(String(decoding: bytes, as: UTF8.self)) }
        let addedTokens = specialTokens.enumerated().map { id, content in
            #"{"id":\#(id),"content":\#(JSONStringLiteral.quote(content)),"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}"#
        }
        let template = #"{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<s>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}}"#
        let vocab = tokens.enumerated().map { "\(quotedToken($0.element)):\($0.offset)" }
        let mergeList = merges.map { "[\(quotedToken(tokens[Int($0.0)])),\(quotedToken(tokens[Int($0.1)]))]" }
        return """
        {"version":"1.0","truncation":null,"padding":null,
        "added_tokens":[\(addedTokens.joined(separator: ","))],
        "normalizer":null,
        "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
        "post_processor":\(template),
        "decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
        "model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,
        "vocab":{\(vocab.joined(separator: ",\n"))},
        "merges":[\(mergeList.joined(separator: ",\n"))]}}

        """
    }

}

/// Why `TokenizerBuilder` could not make a tokenizer of the requested size.
public enum TokenizerBuilderError: Error, Equatable, CustomStringConvertible {
    case vocabularyTooSmall(requested: Int, minimum: Int)
    case corpusExhausted(requested: Int, reached: Int)

    public var description: String {
        switch self {
        case .vocabularyTooSmall(let requested, let minimum):
            return "vocabulary size \(requested) is below the minimum \(minimum) (3 special tokens + 256 bytes)"
        case .corpusExhausted(let requested, let reached):
            return "the corpus ran out of pairs to merge at \(reached) tokens, short of the requested \(requested); use a larger corpus or a smaller vocabulary"
        }
    }
}
