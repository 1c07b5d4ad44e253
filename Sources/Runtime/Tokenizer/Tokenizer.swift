import Foundation

/// A Hugging Face `tokenizer.json` tokenizer for LLaMA-family checkpoints, reproducing the Rust
/// `tokenizers` library id for id and string for string: byte-level BPE (GPT-2, LLaMA-3) and
/// SentencePiece-style BPE with byte fallback (LLaMA-2, Mistral).
///
/// Encoding runs the library's pipeline:
/// 1. added tokens (`<s>`, `<|begin_of_text|>`, ...) are cut out of the raw text, longest first;
/// 2. each remaining stretch is normalized, and added tokens marked `normalized` are cut out of it;
/// 3. the pre-tokenizer splits it into words (and maps bytes to GPT-2's printable alphabet);
/// 4. BPE merges each word into ids;
/// 5. the post-processor adds BOS/EOS when asked.
///
/// Decoding maps ids to token strings (skipping ids out of range, and special tokens on request)
/// and runs the decoder chain. Unsupported components (WordPiece, Unigram, NFKC, ...) and
/// malformed files are `FormatError`s at load time.
///
/// ```swift
/// let tokenizer = try Tokenizer(directory: modelDirectory)
/// let ids = tokenizer.encode("Hello, world!")                  // [BOS, ...]
/// let text = tokenizer.decode(ids, skipSpecialTokens: true)    // "Hello, world!"
/// let stream = tokenizer.makeStreamingDecoder()
/// for id in generated { print(stream.append(id), terminator: "") }
/// print(stream.flush())
/// ```
/// A tokenizer is immutable apart from a bounded, locked word cache, so one instance may serve
/// concurrent requests.
public final class Tokenizer: @unchecked Sendable {
    let model: BPEModel
    let added: AddedVocabulary
    let normalizer: TokenNormalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: TokenPostProcessor?
    let decoder: TokenDecoder?

    /// The first special token the post-processor puts before the text, else the config's
    /// `bos_token`, else an added token named `<s>`, `<|begin_of_text|>`, `<|startoftext|>` or `<bos>`.
    public let bosTokenId: Int?
    /// The config's `eos_token` (LLaMA-3 Instruct says `<|eot_id|>` there), else the last special
    /// token the post-processor puts after the text, else an added token named `</s>`,
    /// `<|end_of_text|>`, `<|endoftext|>`, `<|eot_id|>` or `<eos>`.
    public let eosTokenId: Int?
    /// Ids of added tokens marked special: what `skipSpecialTokens` drops.
    public let specialTokenIds: Set<Int>
    /// Largest id + 1 over the model vocabulary and the added tokens.
    public let vocabularySize: Int
    /// What this tokenizer was built from: tokenizer.json (and tokenizer_config.json) bytes, or a
    /// GGUF's tokenizer metadata, which is built directly (a JSON round trip of a 262k vocabulary
    /// costs seconds) and written as JSON only when asked.
    enum Source {
        case json(Data, config: Data?)
        case gguf(GGUFTokenizerSpec)
    }
    let source: Source

    /// The tokenizer.json and tokenizer_config.json bytes this tokenizer was built from (for a
    /// GGUF, the ones its metadata translates to): what a saved Hugging Face folder carries.
    var sourceJSON: Data {
        switch source {
        case .json(let data, _): return data
        case .gguf(let spec): return spec.tokenizerJSON()
        }
    }
    var sourceConfig: Data? {
        switch source {
        case .json(_, let config): return config
        case .gguf(let spec): return spec.configJSON()
        }
    }

    /// Reads DIR/tokenizer.json, and DIR/tokenizer_config.json when present.
    public convenience init(directory: URL) throws {
        let file = directory.appendingPathComponent("tokenizer.json")
        let configFile = directory.appendingPathComponent("tokenizer_config.json")
        let data = try RegularFile.contents(file)
        let config = FileManager.default.fileExists(atPath: configFile.path) ? try RegularFile.contents(configFile) : nil
        try self.init(tokenizerJSON: data, config: config, fileName: file.path)
    }

    /// Parses tokenizer.json bytes, with tokenizer_config.json bytes for files without a
    /// post-processor. `fileName` names the file in errors (the config is named as its sibling).
    public convenience init(tokenizerJSON: Data, config: Data? = nil, fileName: String = "tokenizer.json") throws {
        let json = TokenizerJSON(file: fileName)
        let root = try json.parse(tokenizerJSON)

        let modelObject = try json.object(json.optional(root, "model"), "model")
        let modelType = try json.optionalString(modelObject, "type", "model")
        guard modelType == "BPE" || (modelType == nil && modelObject["merges"] != nil) else {
            throw json.error("model.type", "unsupported model type \"\(modelType ?? "none")\" (only BPE is supported)")
        }
        let model = try BPEModel(modelObject, "model", json)
        let normalizer = try json.optional(root, "normalizer").map { try TokenNormalizer.parse($0, "normalizer", json) }
        let preTokenizer = try json.optional(root, "pre_tokenizer").map { try PreTokenizer.parse($0, "pre_tokenizer", json) }
        let decoder = try json.optional(root, "decoder").map { try TokenDecoder.parse($0, "decoder", json) }

        var entries: [AddedToken] = []
        if let list = json.optional(root, "added_tokens") {
            for (k, item) in try json.array(list, "added_tokens").enumerated() {
                let path = "added_tokens[\(k)]"
                let object = try json.object(item, path)
                entries.append(AddedToken(
                    content: Array(try json.string(object["content"], "\(path).content").utf8),
                    special: try json.bool(object, "special", path, default: false),
                    singleWord: try json.bool(object, "single_word", path, default: false),
                    lstrip: try json.bool(object, "lstrip", path, default: false),
                    rstrip: try json.bool(object, "rstrip", path, default: false),
                    normalized: try json.bool(object, "normalized", path, default: true)))
            }
        }
        let settings = try TokenizerConfig(config, file: Tokenizer.siblingConfigName(of: fileName))
        let postProcessor = try json.optional(root, "post_processor").map { try TokenPostProcessor.parse($0, "post_processor", json) }
        try self.init(model: model, addedTokens: entries, normalizer: normalizer, preTokenizer: preTokenizer, decoder: decoder,
                      postProcessor: postProcessor, settings: settings, source: .json(tokenizerJSON, config: config), json: json)
    }

    /// The tokenizer from its parts; `postProcessor` nil takes BOS/EOS from `settings`, as
    /// transformers does for a tokenizer.json without one. `json` names the file in errors.
    init(model: BPEModel, addedTokens entries: [AddedToken], normalizer: TokenNormalizer?, preTokenizer: PreTokenizer?,
         decoder: TokenDecoder?, postProcessor: TokenPostProcessor?, settings: TokenizerConfig, source: Source,
         json: TokenizerJSON) throws {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.decoder = decoder
        self.source = source
        let added = AddedVocabulary(entries, modelId: { model.idByToken[$0] }, modelSize: model.size,
                                    normalizer: normalizer)
        self.added = added
        // tokenizers skips a token on decode when its string is a special token's content.
        specialTokenIds = Set(added.stringById.compactMap { id, string in
            added.specialContents.contains(TokenBytes(string)) ? id : nil
        })
        vocabularySize = max(model.tokenById.count, (added.idByContent.values.max() ?? -1) + 1)

        func lookup(_ token: String?) -> Int? {
            guard let token else { return nil }
            let key = TokenBytes(token)
            return added.idByContent[key] ?? model.idByToken[key]
        }
        let configBos = lookup(settings.bosToken)
        let configEos = lookup(settings.eosToken)

        if let postProcessor {
            self.postProcessor = postProcessor
        } else if settings.present {
            // Without a post-processor, transformers adds BOS/EOS according to the config.
            let before = settings.addBos ? configBos.map { [$0] } ?? [] : []
            let after = settings.addEos ? configEos.map { [$0] } ?? [] : []
            self.postProcessor = before.isEmpty && after.isEmpty ? nil : .template(before: before, after: after)
        } else {
            self.postProcessor = nil
        }

        let surrounding: (before: [Int], after: [Int]) = self.postProcessor?.surroundingIds ?? ([], [])
        // Every id encode can emit must be a token: a template id past the vocabulary would
        // otherwise reach the model as an id it has no row for.
        let size = vocabularySize
        if let stray = (surrounding.before + surrounding.after).first(where: { $0 < 0 || $0 >= size }) {
            throw json.error("post_processor", "special token id \(stray) is not in the vocabulary (0..<\(size))")
        }
        bosTokenId = surrounding.before.first ?? configBos
            ?? ["<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>"].lazy.compactMap { added.idByContent[TokenBytes($0)] }.first
        eosTokenId = configEos ?? surrounding.after.last
            ?? ["</s>", "<|end_of_text|>", "<|endoftext|>", "<|eot_id|>", "<eos>"].lazy.compactMap { added.idByContent[TokenBytes($0)] }.first
    }

    /// tokenizer.json and tokenizer_config.json for a Hugging Face folder, the config carrying
    /// `chatTemplate` when one is given. `embeddingRows`: a GGUF's tokenizer leaves out the added
    /// tokens its model has no embedding row for (a gpt2 file's default `<|endoftext|>` when the
    /// vocabulary lacks it), which a folder may not have (`ModelCheckpoint.tokenizer()`).
    public func huggingFaceFiles(chatTemplate: String? = nil, embeddingRows: Int? = nil) -> [(name: String, data: Data)] {
        // A GGUF's tokenizer.json is written once, for these rows.
        let json: Data
        if case .gguf(let spec) = source { json = spec.tokenizerJSON(idsBelow: embeddingRows) } else { json = sourceJSON }
        var files: [(String, Data)] = [("tokenizer.json", json)]
        var config = sourceConfig.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] } ?? [:]
        if let chatTemplate { config["chat_template"] = chatTemplate }
        if sourceConfig != nil || chatTemplate != nil,
           let data = try? JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]) {
            files.append(("tokenizer_config.json", data))
        }
        return files
    }

    private static func siblingConfigName(of fileName: String) -> String {
        guard let slash = fileName.lastIndex(of: "/") else { return "tokenizer_config.json" }
        return String(fileName[...slash]) + "tokenizer_config.json"
    }

    // MARK: Encoding

    /// The ids of `text`; with `addSpecialTokens`, the post-processor's BOS/EOS around them.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        let bytes = Array(text.utf8)
        var ids: [Int] = []
        ids.reserveCapacity(bytes.count / 3 + 4)
        var workspace = BPEWorkspace()
        for segment in added.rawMatcher.split(bytes) {
            if let id = segment.id {
                ids.append(id)
                continue
            }
            guard !segment.range.isEmpty else { continue }
            // A segment or part that is the whole text shares its bytes instead of copying them.
            let raw = segment.range == bytes.indices ? bytes : Array(bytes[segment.range])
            let normalized = normalizer?.apply(raw) ?? raw
            for part in added.normalizedMatcher.split(normalized) {
                if let id = part.id {
                    ids.append(id)
                    continue
                }
                guard !part.range.isEmpty else { continue }
                let piece = PreToken(bytes: part.range == normalized.indices ? normalized : Array(normalized[part.range]),
                                     atStart: segment.range.lowerBound == 0 && part.range.lowerBound == 0)
                // Word by word: a long text never holds all its words at once.
                guard let preTokenizer else {
                    model.tokenize(piece.bytes, into: &ids, workspace: &workspace)
                    continue
                }
                preTokenizer.forEachWord(of: piece) { word in
                    if !word.bytes.isEmpty { model.tokenize(word.bytes, into: &ids, workspace: &workspace) }
                }
            }
        }
        if addSpecialTokens, let postProcessor { return postProcessor.process(ids) }
        return ids
    }

    // MARK: Decoding

    /// The text of `ids`. Ids outside the vocabulary are skipped; invalid UTF-8 from byte tokens
    /// becomes U+FFFD exactly as in tokenizers.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    func decodeBytes<C: Collection>(_ ids: C, skipSpecialTokens: Bool) -> [UInt8] where C.Element == Int {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let token = decodedToken(id, skipSpecialTokens: skipSpecialTokens) { tokens.append(token) }
        }
        if let decoder { return decoder.decode(tokens) }
        return Array(tokens.joined(separator: [0x20]))
    }

    /// The token string decode hands to the decoder for an id; nil when the id is skipped
    /// (out of range, or special while skipping special tokens).
    func decodedToken(_ id: Int, skipSpecialTokens: Bool) -> [UInt8]? {
        if skipSpecialTokens && specialTokenIds.contains(id) { return nil }
        return tokenBytes(for: id)
    }

    /// An incremental decoder for generation; see `StreamingDecoder`.
    public func makeStreamingDecoder(skipSpecialTokens: Bool = true) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }

    // MARK: Vocabulary

    func tokenBytes(for id: Int) -> [UInt8]? {
        if let string = added.stringById[id] { return string }
        guard id >= 0, id < model.tokenById.count else { return nil }
        return model.tokenById[id]
    }

    /// The token string of an id (added tokens first, then the model vocabulary), as tokenizers'
    /// `id_to_token` gives it: a `normalized` added token in its normalized form.
    public func token(for id: Int) -> String? {
        tokenBytes(for: id).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The id of a token string, compared byte for byte.
    public func id(for token: String) -> Int? {
        let key = TokenBytes(token)
        return added.idByContent[key] ?? model.idByToken[key]
    }
}

/// What tokenizer.json files without a post-processor take from tokenizer_config.json.
struct TokenizerConfig {
    var present = false
    var addBos = false
    var addEos = false
    var bosToken: String?
    var eosToken: String?

    /// The settings a GGUF's metadata gives.
    init(addBos: Bool, addEos: Bool, bosToken: String?, eosToken: String?) {
        present = true
        self.addBos = addBos
        self.addEos = addEos
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    init(_ data: Data?, file: String) throws {
        guard let data else { return }
        let json = TokenizerJSON(file: file)
        let root = try json.parse(data)
        present = true
        func tokenText(_ key: String) throws -> String? {
            guard let value = json.optional(root, key) else { return nil }
            if let text = value as? String { return text }
            // An AddedToken object: {"__type": "AddedToken", "content": "<s>", ...}.
            return try json.string(try json.object(value, key)["content"], "\(key).content")
        }
        bosToken = try tokenText("bos_token")
        eosToken = try tokenText("eos_token")
        let className = (root["tokenizer_class"] as? String) ?? ""
        // LlamaTokenizer defaults to adding BOS when the config does not say.
        addBos = try json.bool(root, "add_bos_token", "tokenizer_config", default: className.hasPrefix("Llama"))
        addEos = try json.bool(root, "add_eos_token", "tokenizer_config", default: false)
    }
}
