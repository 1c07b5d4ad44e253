/// Finds added tokens in text with tokenizers' rules: leftmost-longest matches (its Aho-Corasick
/// automaton), `single_word` discarding a match that touches a word character, `lstrip`/`rstrip`
/// swallowing the whitespace beside it.
struct AddedTokenMatcher {
    private struct Node {
        var children: [UInt8: Int32] = [:]
        var match: Int32 = -1  // index into `entries`
    }
    private var nodes = [Node()]
    private var rootChildren = [Int32](repeating: -1, count: 256)
    private var entries: [(id: Int, token: AddedToken)] = []

    var isEmpty: Bool { entries.isEmpty }

    mutating func insert(_ pattern: [UInt8], id: Int, token: AddedToken) {
        guard !pattern.isEmpty else { return }
        var node = 0
        for (k, byte) in pattern.enumerated() {
            if let child = nodes[node].children[byte] {
                node = Int(child)
            } else {
                nodes.append(Node())
                let child = Int32(nodes.count - 1)
                nodes[node].children[byte] = child
                if k == 0 { rootChildren[Int(byte)] = child }
                node = Int(child)
            }
        }
        if nodes[node].match < 0 {
            entries.append((id, token))
            nodes[node].match = Int32(entries.count - 1)
        }
    }

    /// The text cut into stretches, each either an added token's id (with any whitespace it
    /// strips) or plain text (id nil). Covers the whole text.
    func split(_ text: [UInt8]) -> [(range: Range<Int>, id: Int?)] {
        guard !isEmpty, !text.isEmpty else { return [(0..<text.count, nil)] }
        var out: [(range: Range<Int>, id: Int?)] = []
        var startOffset = 0
        var position = 0
        while position < text.count {
            guard let (matchEnd, entry) = longestMatch(text, at: position) else {
                position += 1
                continue
            }
            let matchStart = position
            position = matchEnd  // the automaton resumes after the match, kept or not
            let token = entries[entry].token
            if token.singleWord {
                let startSpace = matchStart == 0 || !AddedTokenMatcher.isWordScalar(before: matchStart, in: text)
                let stopSpace = matchEnd == text.count || !AddedTokenMatcher.isWordScalar(at: matchEnd, in: text)
                if !startSpace || !stopSpace { continue }
            }
            var start = matchStart
            var stop = matchEnd
            if token.lstrip {
                var k = start
                while k > 0, let (scalar, length) = AddedTokenMatcher.scalar(before: k, in: text), scalar.properties.isWhitespace {
                    k -= length
                }
                start = max(k, startOffset)
            }
            if token.rstrip {
                while stop < text.count {
                    let length = ByteText.sequenceLength(lead: text[stop])
                    let scalar = ByteText.decodeScalar(text, at: stop, length: min(length, text.count - stop))
                    guard scalar.properties.isWhitespace else { break }
                    stop += length
                }
            }
            start = max(start, startOffset)
            if startOffset < start { out.append((startOffset..<start, nil)) }
            out.append((start..<stop, entries[entry].id))
            startOffset = stop
        }
        if startOffset != text.count { out.append((startOffset..<text.count, nil)) }
        return out
    }

    private func longestMatch(_ text: [UInt8], at position: Int) -> (end: Int, entry: Int)? {
        var node = rootChildren[Int(text[position])]
        guard node >= 0 else { return nil }
        var best: (end: Int, entry: Int)? = nil
        var k = position + 1
        while true {
            let current = nodes[Int(node)]
            if current.match >= 0 { best = (k, Int(current.match)) }
            guard k < text.count, let child = current.children[text[k]] else { break }
            node = child
            k += 1
        }
        return best
    }

    private static func scalar(before end: Int, in text: [UInt8]) -> (Unicode.Scalar, Int)? {
        var start = end - 1
        while start > 0 && text[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= 0 else { return nil }
        return (ByteText.decodeScalar(text, at: start, length: end - start), end - start)
    }

    private static func isWordScalar(before end: Int, in text: [UInt8]) -> Bool {
        guard let (scalar, _) = scalar(before: end, in: text) else { return false }
        return isWord(scalar)
    }

    private static func isWordScalar(at start: Int, in text: [UInt8]) -> Bool {
        let length = min(ByteText.sequenceLength(lead: text[start]), text.count - start)
        return isWord(ByteText.decodeScalar(text, at: start, length: length))
    }

    /// Rust regex's Unicode `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    static func isWord(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}
