import Foundation

extension Tokenizer {
    /// The tokenizer a GGUF file's metadata describes (`tokenizer.ggml.*`), as transformers
    /// (5.x, `AutoTokenizer.from_pretrained(dir, gguf_file=...)`) builds it from the same file:
    ///
    /// - `tokenizer.ggml.model` = `gpt2`: byte-level BPE with the file's merges (GPT2Tokenizer). The
    ///   vocabulary is kept in GPT-2's byte alphabet (a token spelled outside it is respelled byte by
    ///   byte). `tokenizer.ggml.pre` picks the split regex: LLaMA-3's for `llama-bpe`, `llama3`,
    ///   `llama-v3`, `smaug-bpe`, `dbrx`, `falcon3`, ..., Qwen2's for `qwen2`, `deepseek-r1-qwen`, ...;
    ///   every other name (`smollm`, `gpt2`, `default`, none) keeps the GPT-2 regex, as transformers
    ///   does (llama.cpp has its own regexes for some of them; transformers ignores those).
    /// - `tokenizer.ggml.model` = `llama`: SentencePiece BPE with byte fallback (LlamaTokenizer).
    ///   Without `tokenizer.ggml.merges`, the merges are derived from the vocabulary and the scores
    ///   exactly as transformers' `generate_merges` does. Text gets a "▁" prefix (Metaspace,
    ///   prepend_scheme "first") whatever `tokenizer.ggml.add_space_prefix` says: transformers does
    ///   not read that key for these files.
    /// - `llama` in a `gemma`, `gemma2` or `gemma3` file: SentencePiece BPE as GemmaTokenizer builds
    ///   it: spaces become "▁" (no prefix), whitespace tokens stored with real spaces are respelled
    ///   with "▁", merges are derived with the file's order as the score, `<unk>` is the unknown
    ///   token. Other architectures with their own SentencePiece builder (phi3) are a FormatError.
    /// - pre `qwen2`: text is NFC-normalized before splitting, as Qwen2's own tokenizer does
    ///   (transformers' GGUF loader leaves this out, so it differs on text that is not NFC).
    ///
    /// Tokens typed control (3) become special added tokens (for `gpt2`, only those spelled in the
    /// byte alphabet), user-defined ones (4) plain added tokens; the BOS, EOS, unknown and padding
    /// tokens the ids name are special added tokens too, and so are the defaults of the class
    /// transformers builds (`<|endoftext|>` for gpt2; `<s>`, `</s>`, `<unk>` for llama; `<bos>`,
    /// `<eos>`, `<unk>`, `<pad>`, `<mask>` for Gemma), with a new id after the vocabulary when the
    /// file does not have them. BOS/EOS are added per `tokenizer.ggml.add_bos_token` /
    /// `add_eos_token` (defaults: BOS on for `llama`, off for `gpt2`; EOS off).
    ///
    /// The tokenizer is built from these parts directly; `huggingFaceFiles()` writes the equivalent
    /// tokenizer.json only when asked.
    ///
    /// Every missing or malformed field is a `FormatError` of `fileName` naming the key.
    public convenience init(ggufMetadata: [String: GGUFValue], fileName: String) throws {
        let spec = try GGUFTokenizerSpec(metadata: ggufMetadata, file: fileName)
        let parts = spec.parts()
        do {
            try self.init(model: parts.model, addedTokens: spec.addedTokens, normalizer: parts.normalizer,
                          preTokenizer: parts.preTokenizer, decoder: parts.decoder, postProcessor: nil,
                          settings: parts.settings, source: .gguf(spec), json: TokenizerJSON(file: fileName))
        } catch let error as FormatError {
            // The spec is validated, so this should not happen; if it does, do not blame a tokenizer.json.
            throw FormatError(file: fileName, "tokenizer.ggml.*: \(error.problem)")
        }
    }

    /// The file's `tokenizer.chat_template` (a Jinja template), nil when it has none; a
    /// FormatError when the key holds something other than a UTF-8 string.
    public static func chatTemplate(ggufMetadata: [String: GGUFValue], fileName: String) throws -> String? {
        guard let value = ggufMetadata[GGUFTokenizerSpec.Key.chatTemplate] else { return nil }
        return try GGUFMetadataReader(metadata: ggufMetadata, file: fileName)
            .utf8(value, GGUFTokenizerSpec.Key.chatTemplate)
    }
}

/// What a GGUF file's tokenizer metadata says, validated, and the tokenizer.json /
/// tokenizer_config.json transformers would build from it.
struct GGUFTokenizerSpec {
    enum Key {
        static let model = "tokenizer.ggml.model"
        static let pre = "tokenizer.ggml.pre"
        static let tokens = "tokenizer.ggml.tokens"
        static let scores = "tokenizer.ggml.scores"
        static let tokenType = "tokenizer.ggml.token_type"
        static let merges = "tokenizer.ggml.merges"
        static let bos = "tokenizer.ggml.bos_token_id"
        static let eos = "tokenizer.ggml.eos_token_id"
        static let unknown = "tokenizer.ggml.unknown_token_id"
        static let padding = "tokenizer.ggml.padding_token_id"
        static let addBos = "tokenizer.ggml.add_bos_token"
        static let addEos = "tokenizer.ggml.add_eos_token"
        static let addSpacePrefix = "tokenizer.ggml.add_space_prefix"
        static let chatTemplate = "tokenizer.chat_template"
        static let architecture = "general.architecture"
    }

    /// llama.cpp's `llama_token_type` values.
    enum TokenType {
        static let normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// `gemma` is SentencePiece as transformers' GemmaTokenizer shapes it (see `gemmaVocabulary`).
    enum Kind { case byteLevel, sentencePiece, gemma }

    /// One merge: two vocabulary ids and the id of their concatenation.
    struct Merge: Equatable {
        let left: Int32, right: Int32, merged: Int32
    }

    /// transformers' GGUF_PRE_TOKENIZER_SPLITS, limited to the regexes `SplitRegex` implements.
    static let splitRegexByPre: [String: String] = {
        var table: [String: String] = [:]
        for name in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "jina-v5-nano", "dbrx", "smaug-bpe"] {
            table[name] = SplitRegex.cl100kPattern
        }
        for name in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"] { table[name] = SplitRegex.qwen2Pattern }
        return table
    }()

    /// Names transformers maps to split regexes this runtime does not implement.
    static let unsupportedPre: Set<String> = ["tekken", "qwen35", "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"]

    /// Architectures whose SentencePiece files transformers builds as GemmaTokenizer.
    static let gemmaArchitectures: Set<String> = ["gemma", "gemma2", "gemma3"]

    /// transformers picks another builder for this architecture's SentencePiece files.
    static let unsupportedSentencePieceArchitectures: Set<String> = ["phi3"]

    /// Pre-tokenizer names of Qwen2's own tokenizer, which NFC-normalizes text before splitting
    /// (transformers' Qwen2Tokenizer and Qwen's tokenizer.json do; its GGUF loader drops it).
    static let nfcPre: Set<String> = ["qwen2"]

    let file: String
    let kind: Kind
    /// The vocabulary as the BPE model sees it (byte-level tokens respelled), in id order.
    let vocabulary: [[UInt8]]
    /// `vocabulary`'s ids by token; a repeated token has its last id.
    let idByToken: [TokenBytes: Int]
    /// The merges, best first, as ids into `vocabulary`; nil for Gemma without merges in the file,
    /// whose derived merges rank by file position (`gemmaMerges()`), which the BPE model follows
    /// without the list.
    let merges: [Merge]?
    let addedTokens: [AddedToken]
    let splitRegex: String?
    /// NFC before splitting (Qwen2).
    let normalizesNFC: Bool
    /// The BPE model's unknown token (GemmaTokenizer's "<unk>"; LlamaTokenizer sets none).
    let unknownToken: [UInt8]?
    let addBos: Bool
    let addEos: Bool
    let bosToken: [UInt8]?
    let eosToken: [UInt8]?

    init(metadata: [String: GGUFValue], file: String) throws {
        self.file = file
        let reader = GGUFMetadataReader(metadata: metadata, file: file)

        guard let modelValue = metadata[Key.model] else {
            throw reader.error(Key.model, "missing (the file has no tokenizer)")
        }
        let modelName = try reader.utf8(modelValue, Key.model)
        let architecture = try metadata[Key.architecture].map { try reader.utf8($0, Key.architecture) }
        switch modelName {
        case "gpt2":
            kind = .byteLevel
        case "llama":
            if let architecture, Self.unsupportedSentencePieceArchitectures.contains(architecture) {
                throw reader.error(Key.model, "a SentencePiece tokenizer for architecture \"\(architecture)\" is not supported (only LLaMA's and Gemma's)")
            }
            kind = architecture.map { Self.gemmaArchitectures.contains($0) } == true ? .gemma : .sentencePiece
        default:
            throw reader.error(Key.model, "unsupported tokenizer model \"\(modelName)\" (supported: gpt2, llama)")
        }

        let pre = try metadata[Key.pre].map { try reader.utf8($0, Key.pre) }
        if let pre, Self.unsupportedPre.contains(pre) {
            throw reader.error(Key.pre, "pre-tokenizer \"\(pre)\" is not supported (its split regex is not implemented)")
        }
        splitRegex = pre.flatMap { Self.splitRegexByPre[$0] }
        normalizesNFC = kind == .byteLevel && pre.map { Self.nfcPre.contains($0) } == true
        unknownToken = kind == .gemma ? Array("<unk>".utf8) : nil

        // Tokens: strings, valid UTF-8 (transformers decodes them strictly).
        let rawTokens = try reader.stringArray(Key.tokens, required: true)!
        guard !rawTokens.isEmpty else { throw reader.error(Key.tokens, "is empty") }
        for (k, token) in rawTokens.enumerated() where !LossyUTF8.isValid(token) {
            throw reader.error("\(Key.tokens)[\(k)]", "is not valid UTF-8")
        }
        let count = rawTokens.count
        guard count < Int(Int32.max) else { throw reader.error(Key.tokens, "has too many tokens (\(count))") }

        let types = try reader.intArray(Key.tokenType)
        if let types, types.count != count {
            throw reader.error(Key.tokenType, "has \(types.count) entries for \(count) tokens")
        }
        let scores = try reader.floatArray(Key.scores)
        if let scores {
            guard scores.count == count else { throw reader.error(Key.scores, "has \(scores.count) entries for \(count) tokens") }
            if let k = scores.firstIndex(where: { $0.isNaN }) { throw reader.error("\(Key.scores)[\(k)]", "is NaN") }
        }
        let fileMerges = try reader.stringArray(Key.merges, required: false)

        func tokenId(_ key: String) throws -> Int? {
            guard let value = metadata[key] else { return nil }
            guard let id = value.intValue else {
                if case .uint64(let big) = value { throw reader.error(key, "id \(big) is out of range (\(count) tokens)") }
                throw reader.error(key, "expected an integer, got \(GGUFMetadataReader.describe(value))")
            }
            guard id >= 0, id < count else { throw reader.error(key, "id \(id) is out of range (\(count) tokens)") }
            return id
        }
        let bosId = try tokenId(Key.bos), eosId = try tokenId(Key.eos)
        let unknownId = try tokenId(Key.unknown), paddingId = try tokenId(Key.padding)
        addBos = try reader.bool(Key.addBos) ?? (kind != .byteLevel)
        addEos = try reader.bool(Key.addEos) ?? false
        _ = try reader.bool(Key.addSpacePrefix)  // validated; transformers does not use it (see above)
        bosToken = bosId.map { rawTokens[$0] }
        eosToken = eosId.map { rawTokens[$0] }

        // The model vocabulary: byte-level tokens outside the alphabet are respelled byte by byte.
        switch kind {
        case .byteLevel:
            vocabulary = rawTokens.map { token in
                Self.isInByteAlphabet(token) ? token : ByteLevelAlphabet.encode(token)
            }
        case .sentencePiece:
            vocabulary = rawTokens
        case .gemma:
            vocabulary = Self.gemmaVocabulary(rawTokens)
        }
        var idByToken: [TokenBytes: Int] = [:]
        idByToken.reserveCapacity(count)
        for (id, token) in vocabulary.enumerated() { idByToken[TokenBytes(token)] = id }  // a repeat: the later id
        self.idByToken = idByToken

        if let fileMerges {
            var parsed: [Merge] = []
            parsed.reserveCapacity(fileMerges.count)
            for (k, line) in fileMerges.enumerated() {
                func fail(_ problem: String) -> FormatError { reader.error("\(Key.merges)[\(k)]", problem) }
                func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
                guard let space = line.firstIndex(of: 0x20), !line[(space + 1)...].contains(0x20) else {
                    throw fail("\"\(text(line))\" is not two tokens separated by one space")
                }
                let left = Array(line[..<space]), right = Array(line[(space + 1)...])
                guard let leftId = idByToken[TokenBytes(left)] else { throw fail("token \"\(text(left))\" is not in \(Key.tokens)") }
                guard let rightId = idByToken[TokenBytes(right)] else { throw fail("token \"\(text(right))\" is not in \(Key.tokens)") }
                guard let merged = idByToken[TokenBytes(left + right)] else {
                    throw fail("merged token \"\(text(left + right))\" is not in \(Key.tokens)")
                }
                parsed.append(Merge(left: Int32(leftId), right: Int32(rightId), merged: Int32(merged)))
            }
            merges = parsed
        } else if kind == .gemma {
            merges = nil
        } else if kind == .sentencePiece {
            guard let scores else {
                throw reader.error(Key.scores, "missing (needed to derive the merges of a file without \(Key.merges))")
            }
            merges = Self.derivedMerges(tokens: rawTokens, scores: scores, idByToken: idByToken)
        } else {
            throw reader.error(Key.merges, "missing (a gpt2 tokenizer needs its merges)")
        }

        // Added tokens, in the order transformers adds them: the special tokens the tokenizer class
        // has by default (GPT2Tokenizer's "<|endoftext|>", LlamaTokenizer's "<s>", "</s>", "<unk>",
        // whether or not the file has them: one it lacks gets the next free id), the control tokens,
        // the user-defined ones, then the named special tokens (bos, eos, unk, pad) not added yet.
        var added: [AddedToken] = []
        var addedContents = Set<TokenBytes>()
        func add(_ content: [UInt8], special: Bool) {
            added.append(AddedToken(content: content, special: special, singleWord: false, lstrip: false,
                                    rstrip: false, normalized: false))
            addedContents.insert(TokenBytes(content))
        }
        let classDefaults: [String]
        switch kind {
        case .byteLevel: classDefaults = ["<|endoftext|>"]
        case .sentencePiece: classDefaults = ["<s>", "</s>", "<unk>"]
        case .gemma: classDefaults = ["<bos>", "<eos>", "<unk>", "<pad>", "<mask>"]
        }
        for token in classDefaults where !addedContents.contains(TokenBytes(token)) { add(Array(token.utf8), special: true) }
        if let types {
            for (token, type) in zip(rawTokens, types) where type == TokenType.control {
                if kind == .byteLevel && !Self.isInByteAlphabet(token) { continue }
                add(token, special: true)
            }
            for (token, type) in zip(rawTokens, types) where type == TokenType.userDefined {
                let key = TokenBytes(token)
                if idByToken[key] != nil || addedContents.contains(key) { add(token, special: false) }
            }
        }
        for id in [bosId, eosId, unknownId, paddingId].compactMap({ $0 }) {
            let token = rawTokens[id]
            if !addedContents.contains(TokenBytes(token)) { add(token, special: true) }
        }
        addedTokens = added
    }

    /// Whether every scalar of `token` is one of the 256 stand-ins of GPT-2's byte alphabet.
    static func isInByteAlphabet(_ token: [UInt8]) -> Bool {
        // The alphabet is U+0021...U+007E, U+00A1...U+0143 less U+00AD; tokens are valid UTF-8.
        var i = 0
        while i < token.count {
            let lead = token[i]
            if lead < 0x80 {
                guard lead >= 0x21 && lead <= 0x7E else { return false }
                i += 1
                continue
            }
            guard lead >= 0xC2 && lead <= 0xC5, i + 1 < token.count else { return false }
            let scalar = UInt32(lead & 0x1F) << 6 | UInt32(token[i + 1] & 0x3F)
            guard scalar >= 0xA1 && scalar <= 0x143 && scalar != 0xAD else { return false }
            i += 2
        }
        return true
    }
}
