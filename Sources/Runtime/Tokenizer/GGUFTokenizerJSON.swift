import Foundation

/// The tokenizer transformers builds from a GGUF's tokenizer metadata, as the runtime's parts and
/// as the tokenizer.json / tokenizer_config.json a saved folder carries. The two must agree (the
/// Hugging Face round trip tests check it).
extension GGUFTokenizerSpec {
    func parts() -> (model: BPEModel, normalizer: TokenNormalizer?, preTokenizer: PreTokenizer?, decoder: TokenDecoder?,
                     settings: TokenizerConfig) {
        let marker = Array("\u{2581}".utf8)
        let normalizer: TokenNormalizer?, preTokenizer: PreTokenizer, decoder: TokenDecoder
        switch kind {
        case .byteLevel:
            normalizer = normalizesNFC ? .nfc : nil
            if let splitRegex, let regex = SplitRegex(pattern: splitRegex) {
                preTokenizer = .sequence([.split(.regex(regex), behavior: .isolated, invert: false),
                                          .byteLevel(addPrefixSpace: false, useRegex: false)])
            } else {
                preTokenizer = .byteLevel(addPrefixSpace: false, useRegex: true)
            }
            decoder = .byteLevel
        case .sentencePiece:
            normalizer = nil
            preTokenizer = .metaspace(replacement: marker, prependScheme: .first, split: false)
            decoder = .sequence([.replace(pattern: marker, content: [0x20]), .byteFallback, .fuse, .strip(content: " ", start: 1, stop: 0)])
        case .gemma:
            normalizer = .replace(pattern: [0x20], content: marker)
            preTokenizer = .split(.literal([0x20]), behavior: .mergedWithPrevious, invert: false)
            decoder = .sequence([.replace(pattern: marker, content: [0x20]), .byteFallback, .fuse])
        }
        let model = BPEModel(vocabulary: vocabulary, idByToken: idByToken, merges: merges, unknownToken: unknownToken,
                             byteFallback: kind != .byteLevel, fuseUnknown: kind != .byteLevel)
        let settings = TokenizerConfig(addBos: addBos, addEos: addEos, bosToken: bosToken.map { String(decoding: $0, as: UTF8.self) },
                                       eosToken: eosToken.map { String(decoding: $0, as: UTF8.self) })
        return (model, normalizer, preTokenizer, decoder, settings)
    }

    /// `idsBelow`: only the added tokens whose id is below it.
    func tokenizerJSON(idsBelow limit: Int? = nil) -> Data {
        var out = JSONBytes()
        out.raw(#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":["#)
        // Each token's id as tokenizers assigns it (the model's, else the next free one), which is
        // what a reader of the file expects to find (tokenizers itself reassigns them the same way).
        let ids = AddedVocabulary(addedTokens, modelId: { idByToken[$0] }, modelSize: vocabulary.count, normalizer: nil).idByContent
        let kept = addedTokens.filter { token in limit.map { (ids[TokenBytes(token.content)] ?? 0) < $0 } ?? true }
        for (k, token) in kept.enumerated() {
            if k > 0 { out.raw(",") }
            out.raw(#"{"id":\#(ids[TokenBytes(token.content)] ?? 0),"content":"#)
            out.string(token.content)
            out.raw(#","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":\#(token.special)}"#)
        }
        out.raw(#"],"normalizer":"#)
        switch kind {
        case .byteLevel: out.raw(normalizesNFC ? #"{"type":"NFC"}"# : "null")
        case .sentencePiece: out.raw("null")
        case .gemma: out.raw(#"{"type":"Replace","pattern":{"String":" "},"content":"\u2581"}"#)
        }
        out.raw(#","pre_tokenizer":"#)
        if kind == .gemma {
            // A no-op after the normalizer, kept as GemmaTokenizer has it.
            out.raw(#"{"type":"Split","pattern":{"String":" "},"behavior":"MergedWithPrevious","invert":false}"#)
        } else if let splitRegex {
            out.raw(#"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"#)
            out.string(Array(splitRegex.utf8))
            out.raw(#"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}"#)
        } else if kind == .byteLevel {
            out.raw(#"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#)
        } else {
            out.raw(#"{"type":"Metaspace","replacement":"\u2581","prepend_scheme":"first","split":false}"#)
        }
        // The post-processor comes from the config (add_bos_token / add_eos_token), as in transformers.
        out.raw(#","post_processor":null,"decoder":"#)
        switch kind {
        case .byteLevel:
            out.raw(#"{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}"#)
            out.raw(#","model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":false,"vocab":{"#)
        case .sentencePiece:
            out.raw(#"{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"\u2581"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}"#)
            out.raw(#","model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"ignore_merges":false,"vocab":{"#)
        case .gemma:
            out.raw(#"{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"\u2581"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"}]}"#)
            out.raw(#","model":{"type":"BPE","dropout":null,"unk_token":"#)
            out.string(unknownToken ?? [])
            out.raw(#","continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,"ignore_merges":false,"vocab":{"#)
        }
        for (id, token) in vocabulary.enumerated() {
            if id > 0 { out.raw(",") }
            out.string(token)
            out.raw(":\(id)")
        }
        out.raw(#"},"merges":["#)
        for (k, merge) in (merges ?? gemmaMerges()).enumerated() {
            out.raw(k > 0 ? ",[" : "[")
            out.string(vocabulary[Int(merge.left)])
            out.raw(",")
            out.string(vocabulary[Int(merge.right)])
            out.raw("]")
        }
        out.raw("]}}")
        return Data(out.bytes)
    }

    /// The tokenizer_config.json settings: BOS/EOS tokens and whether encode adds them.
    func configJSON() -> Data {
        var out = JSONBytes()
        out.raw(#"{"add_bos_token":\#(addBos),"add_eos_token":\#(addEos)"#)
        if let bosToken {
            out.raw(#","bos_token":"#)
            out.string(bosToken)
        }
        if let eosToken {
            out.raw(#","eos_token":"#)
            out.string(eosToken)
        }
        out.raw("}")
        return Data(out.bytes)
    }
}

/// A JSON document written byte by byte (vocabularies are large; strings stay byte-exact).
struct JSONBytes {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    /// A valid UTF-8 string as a JSON literal: quote, backslash and control bytes escaped.
    mutating func string(_ value: [UInt8]) {
        bytes.append(0x22)
        for b in value {
            switch b {
            case 0x22: bytes.append(contentsOf: [0x5C, 0x22])
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0..<0x20: bytes.append(contentsOf: String(format: "\\u%04x", b).utf8)
            default: bytes.append(b)
            }
        }
        bytes.append(0x22)
    }
}
