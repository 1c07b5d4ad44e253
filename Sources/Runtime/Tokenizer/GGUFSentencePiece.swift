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
    /// right piece's length, each descending, ties kept in that order. A repeated token takes its
    /// last id and its last score, as Python's dicts do.
    static func derivedMerges(tokens: [[UInt8]], scores: [Double], idByToken: [TokenBytes: Int]) -> [(left: [UInt8], right: [UInt8])] {
        var scoreByToken: [TokenBytes: Double] = [:]
        var order: [[UInt8]] = []
        for (token, score) in zip(tokens, scores) {
            if scoreByToken.updateValue(score, forKey: TokenBytes(token)) == nil { order.append(token) }
        }
        struct Candidate {
            let left: [UInt8], right: [UInt8]
            let score: Double
            let leftLength: Int, rightLength: Int
            let position: Int
        }
        var candidates: [Candidate] = []
        for token in order {
            let scalars = ByteText.scalarRanges(token)
            guard scalars.count > 1 else { continue }
            var local: [(left: [UInt8], right: [UInt8], leftId: Int, rightId: Int, split: Int)] = []
            for split in 1..<scalars.count {
                let cut = scalars[split].range.lowerBound
                let left = Array(token[..<cut]), right = Array(token[cut...])
                if let leftId = idByToken[TokenBytes(left)], let rightId = idByToken[TokenBytes(right)] {
                    local.append((left, right, leftId, rightId, split))
                }
            }
            local.sort { ($0.leftId, $0.rightId) < ($1.leftId, $1.rightId) }
            let score = scoreByToken[TokenBytes(token)]!
            for piece in local {
                candidates.append(Candidate(left: piece.left, right: piece.right, score: score, leftLength: piece.split,
                                            rightLength: scalars.count - piece.split, position: candidates.count))
            }
        }
        candidates.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftLength != b.leftLength { return a.leftLength > b.leftLength }
            if a.rightLength != b.rightLength { return a.rightLength > b.rightLength }
            return a.position < b.position
        }
        return candidates.map { ($0.left, $0.right) }
    }
}
