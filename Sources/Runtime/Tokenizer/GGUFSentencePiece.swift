/// What a SentencePiece GGUF leaves out and transformers rebuilds: the merges (recovered from the
/// vocabulary) and, for Gemma, the spelling of whitespace tokens.
extension GGUFTokenizerSpec {
    /// transformers' `gemma_tokenizer`: llama.cpp stores Gemma's whitespace tokens ("▁▁", ...) with
    /// real spaces, which GemmaTokenizer's normalizer never leaves in the text; a token that
    /// contains a space and is all white space (Python's `str.isspace`) becomes that many "▁".
    static func gemmaVocabulary(_ tokens: [[UInt8]]) -> [[UInt8]] {
        let marker = Array("\u{2581}".utf8)
        return tokens.map { token in
            guard token.contains(0x20) else { return token }
            let scalars = String(decoding: token, as: UTF8.self).unicodeScalars
            guard scalars.allSatisfy(isPythonWhitespace) else { return token }
            return Array(repeating: marker, count: scalars.count).flatMap { $0 }
        }
    }

    /// transformers' Gemma merges: derived with each token's position in the file as its score
    /// (Gemma's scores do not follow its merge order).
    func gemmaMerges() -> [Merge] {
        Self.derivedMerges(tokens: vocabulary, scores: vocabulary.indices.map { -Double($0) }, idByToken: idByToken)
    }

    /// Python's `str.isspace`: bidirectional class WS, B or S, or category Zs.
    static func isPythonWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// transformers' `generate_merges(vocab, vocab_scores)`: for each distinct token (first
    /// occurrence order), every split into two vocabulary tokens at a code point boundary, ordered by
    /// the pieces' ids; then all of them ordered by the token's score, the left piece's length and the
    /// right piece's length (in code points), each descending, ties kept in that order. A repeated
    /// token takes its last id and its last score, as Python's dicts do. Merges come back as ids.
    static func derivedMerges(tokens: [[UInt8]], scores: [Double], idByToken: [TokenBytes: Int]) -> [Merge] {
        var scoreByToken: [TokenBytes: Double] = [:]
        scoreByToken.reserveCapacity(tokens.count)
        var order: [Int] = []
        for (k, (token, score)) in zip(tokens, scores).enumerated() {
            if scoreByToken.updateValue(score, forKey: TokenBytes(token)) == nil { order.append(k) }
        }
        // Plain values only: a sort of half a million candidates moves no arrays.
        struct Candidate {
            var merge: Merge
            var score: Double
            var leftLength: Int32, rightLength: Int32
            var position: Int32
        }
        var candidates: [Candidate] = []
        candidates.reserveCapacity(2 * tokens.count)
        var local: [Candidate] = []
        var starts: [Int] = []
        for k in order {
            let token = tokens[k]
            starts.removeAll(keepingCapacity: true)
            for (i, byte) in token.enumerated() where byte & 0xC0 != 0x80 { starts.append(i) }
            guard starts.count > 1 else { continue }
            let key = TokenBytes(token)
            let merged = Int32(idByToken[key]!)
            let score = scoreByToken[key]!
            local.removeAll(keepingCapacity: true)
            for split in 1..<starts.count {
                let cut = starts[split]
                guard let left = idByToken[TokenBytes(Array(token[..<cut]))],
                      let right = idByToken[TokenBytes(Array(token[cut...]))] else { continue }
                local.append(Candidate(merge: Merge(left: Int32(left), right: Int32(right), merged: merged), score: score,
                                       leftLength: Int32(split), rightLength: Int32(starts.count - split), position: 0))
            }
            local.sort { ($0.merge.left, $0.merge.right) < ($1.merge.left, $1.merge.right) }
            for var candidate in local {
                candidate.position = Int32(candidates.count)
                candidates.append(candidate)
            }
        }
        candidates.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftLength != b.leftLength { return a.leftLength > b.leftLength }
            if a.rightLength != b.rightLength { return a.rightLength > b.rightLength }
            return a.position < b.position
        }
        return candidates.map(\.merge)
    }
}
