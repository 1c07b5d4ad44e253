/// One entry of tokenizer.json's `added_tokens`: text matched in the input before normalization
/// and pre-tokenization (special tokens such as `<s>`, `<|begin_of_text|>`, or user additions).
struct AddedToken: Equatable {
    let content: [UInt8]
    let special: Bool
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
}

/// The added tokens with the ids tokenizers gives them, and the two matchers it runs: one over the
/// raw input for tokens with `normalized: false`, one over each normalized piece for the rest.
struct AddedVocabulary {
    private(set) var idByContent: [TokenBytes: Int] = [:]
    private(set) var tokenById: [Int: AddedToken] = [:]
    private(set) var specialContents: Set<TokenBytes> = []
    /// The string an id decodes from: the content, normalized for `normalized` tokens (tokenizers
    /// stores those as the normalizer made them, so "ZZTop" behind Prepend("▁") decodes as "▁ZZTop").
    private(set) var stringById: [Int: [UInt8]] = [:]
    private(set) var rawMatcher = AddedTokenMatcher()
    private(set) var normalizedMatcher = AddedTokenMatcher()

    /// Registers the entries in file order the way tokenizers' `AddedVocabulary::add_tokens` does:
    /// content already in the model keeps the model's id; new content gets the next id after the
    /// model's vocabulary (the file's `id` is not consulted, as in tokenizers).
    init(_ entries: [AddedToken], modelId: (TokenBytes) -> Int?, modelSize: Int, normalizer: TokenNormalizer?) {
        var specialOrder: [AddedToken] = []
        var plainOrder: [AddedToken] = []
        for token in entries where token.special && !token.content.isEmpty {
            if specialContents.insert(TokenBytes(token.content)).inserted { specialOrder.append(token) }
        }
        var largestId: Int? = nil
        for token in entries {
            let key = TokenBytes(token.content)
            // An identical entry is ignored (content maps to one id, so that is the only place to look).
            if token.content.isEmpty || idByContent[key].flatMap({ tokenById[$0] }) == token { continue }
            let id: Int
            if let existing = idByContent[key] ?? modelId(key) {
                id = existing
            } else if let largest = largestId {
                id = largest >= modelSize || modelSize == 0 ? largest + 1 : modelSize
            } else {
                id = modelSize
            }
            largestId = max(largestId ?? id, id)
            idByContent[key] = id
            tokenById[id] = token
            stringById[id] = token.normalized ? normalizer?.apply(token.content) ?? token.content : token.content
            if !specialContents.contains(key) { plainOrder.append(token) }
        }
        for token in specialOrder + plainOrder {
            guard let id = idByContent[TokenBytes(token.content)], let stored = tokenById[id] else { continue }
            if token.normalized {
                let pattern = normalizer?.apply(token.content) ?? token.content
                normalizedMatcher.insert(pattern, id: id, token: stored)
            } else {
                rawMatcher.insert(token.content, id: id, token: stored)
            }
        }
    }

    var isEmpty: Bool { idByContent.isEmpty }
}
