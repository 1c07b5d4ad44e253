/// A stretch of normalized text on its way to the BPE model. `atStart` says it begins at offset 0
/// of the original input, which Metaspace's `prepend_scheme: "first"` depends on.
struct PreToken {
    var bytes: [UInt8]
    var atStart: Bool
}

/// The `pre_tokenizer` of a tokenizer.json: splits normalized text into the words BPE merges
/// within, and for byte-level files maps each byte to its printable stand-in. Supports what
/// LLaMA-family files use: ByteLevel (GPT-2), Sequence[Split(cl100k regex), ByteLevel] (LLaMA-3),
/// Metaspace (SentencePiece conversions), and Digits.
indirect enum PreTokenizer {
    case sequence([PreTokenizer])
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme, split: Bool)
    case split(SplitPattern, behavior: SplitBehavior, invert: Bool)
    case digits(individual: Bool)

    enum PrependScheme: String { case always, first, never }

    enum SplitPattern {
        case literal([UInt8])
        case regex(SplitRegex)
    }

    /// How a split treats the matched delimiters (tokenizers' `SplitDelimiterBehavior`).
    enum SplitBehavior: String {
        case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
        case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
    }

    func apply(_ pieces: [PreToken]) -> [PreToken] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [PreToken] in
                var piece = piece
                if addPrefixSpace && piece.bytes.first != 0x20 { piece.bytes.insert(0x20, at: 0) }
                guard useRegex else { return [piece] }
                let found = SplitRegex.gpt2.matches(in: piece.bytes).map { ($0, true) }
                return PreTokenizer.split(piece, found, .isolated)
            }.map { PreToken(bytes: ByteLevelAlphabet.encode($0.bytes), atStart: $0.atStart) }
        case .metaspace(let replacement, let scheme, let split):
            return pieces.flatMap { piece -> [PreToken] in
                var piece = piece
                piece.bytes = ByteText.replacing([0x20], with: replacement, in: piece.bytes)
                let prepend: Bool
                switch scheme {
                case .always: prepend = true
                case .first: prepend = piece.atStart
                case .never: prepend = false
                }
                if prepend && !ByteText.hasPrefix(piece.bytes, replacement) {
                    piece.bytes = replacement + piece.bytes
                }
                guard split else { return [piece] }
                let found = ByteText.occurrences(of: replacement, in: piece.bytes).map { ($0, true) }
                return PreTokenizer.split(piece, found, .mergedWithNext)
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { piece -> [PreToken] in
                let found: [(Range<Int>, Bool)]
                switch pattern {
                case .literal(let literal): found = ByteText.occurrences(of: literal, in: piece.bytes).map { ($0, true) }
                case .regex(let regex): found = regex.matches(in: piece.bytes).map { ($0, true) }
                }
                return PreTokenizer.split(piece, found, behavior, invert: invert)
            }
        case .digits(let individual):
            return pieces.flatMap { piece -> [PreToken] in
                let found = ByteText.scalarRanges(piece.bytes).filter { PreTokenizer.isNumeric($0.scalar) }.map { ($0.range, true) }
                return PreTokenizer.split(piece, found, individual ? .isolated : .contiguous)
            }
        }
    }

    /// Rust's `char::is_numeric`: general categories Nd, Nl, No.
    static func isNumeric(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// tokenizers' `NormalizedString::split`: the matches plus the gaps between them cover the
    /// piece; the behavior decides which parts stay and what merges; empty parts are dropped.
    static func split(_ piece: PreToken, _ matches: [(Range<Int>, Bool)], _ behavior: SplitBehavior,
                      invert: Bool = false) -> [PreToken] {
        let count = piece.bytes.count
        var parts: [(range: Range<Int>, isMatch: Bool)] = []
        parts.reserveCapacity(matches.count * 2 + 1)
        var previous = 0
        for (range, _) in matches {
            if previous != range.lowerBound { parts.append((previous..<range.lowerBound, invert)) }
            parts.append((range, !invert))
            previous = range.upperBound
        }
        if previous != count || parts.isEmpty { parts.append((previous..<count, invert)) }

        var kept: [Range<Int>] = []
        kept.reserveCapacity(parts.count)
        switch behavior {
        case .isolated:
            kept = parts.map(\.range)
        case .removed:
            kept = parts.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var previousMatch = false
            for part in parts {
                if part.isMatch == previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<part.range.upperBound
                } else {
                    kept.append(part.range)
                }
                previousMatch = part.isMatch
            }
        case .mergedWithPrevious:
            var previousMatch = false
            for part in parts {
                if part.isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = last.lowerBound..<part.range.upperBound
                } else {
                    kept.append(part.range)
                }
                previousMatch = part.isMatch
            }
        case .mergedWithNext:
            var previousMatch = false
            for part in parts.reversed() {
                if part.isMatch && !previousMatch, let last = kept.last {
                    kept[kept.count - 1] = part.range.lowerBound..<last.upperBound
                } else {
                    kept.append(part.range)
                }
                previousMatch = part.isMatch
            }
            kept.reverse()
        }
        return kept.compactMap { range in
            guard !range.isEmpty else { return nil }
            return PreToken(bytes: Array(piece.bytes[range]), atStart: piece.atStart && range.lowerBound == 0)
        }
    }

    static func parse(_ value: Any, _ path: String, _ json: TokenizerJSON) throws -> PreTokenizer {
        let object = try json.object(value, path)
        let type = try json.type(object, path)
        switch type {
        case "Sequence":
            let items = try json.array(object["pretokenizers"], "\(path).pretokenizers")
            return .sequence(try items.enumerated().map { try parse($1, "\(path).pretokenizers[\($0)]", json) })
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try json.bool(object, "add_prefix_space", path, default: true),
                              useRegex: try json.bool(object, "use_regex", path, default: true))
        case "Metaspace":
            let replacement = try json.scalar(object["replacement"], "\(path).replacement")
            let scheme: PrependScheme
            if let name = try json.optionalString(object, "prepend_scheme", path) {
                guard let parsed = PrependScheme(rawValue: name) else {
                    throw json.error("\(path).prepend_scheme", "expected \"always\", \"first\" or \"never\", got \"\(name)\"")
                }
                scheme = parsed
            } else {
                // Files older than tokenizers 0.15 carry only `add_prefix_space`.
                scheme = try json.bool(object, "add_prefix_space", path, default: true) ? .always : .never
            }
            return .metaspace(replacement: Array(String(replacement).utf8), prependScheme: scheme,
                              split: try json.bool(object, "split", path, default: true))
        case "Split":
            let patternObject = try json.object(object["pattern"], "\(path).pattern")
            let pattern: SplitPattern
            if let literal = patternObject["String"] {
                pattern = .literal(Array(try json.string(literal, "\(path).pattern.String").utf8))
            } else if let source = patternObject["Regex"] {
                let text = try json.string(source, "\(path).pattern.Regex")
                guard let regex = SplitRegex(pattern: text) else {
                    throw json.error("\(path).pattern.Regex", "unsupported Split regex \(text) (supported: the GPT-2, LLaMA-3/cl100k and Qwen2 patterns)")
                }
                pattern = .regex(regex)
            } else {
                throw json.error("\(path).pattern", "expected {\"String\": ...} or {\"Regex\": ...}")
            }
            let behaviorName = try json.string(object["behavior"], "\(path).behavior")
            guard let behavior = SplitBehavior(rawValue: behaviorName) else {
                throw json.error("\(path).behavior", "unsupported split behavior \"\(behaviorName)\"")
            }
            return .split(pattern, behavior: behavior, invert: try json.bool(object, "invert", path, default: false))
        case "Digits":
            return .digits(individual: try json.bool(object, "individual_digits", path, default: false))
        default:
            throw json.error("\(path).type", "unsupported pre-tokenizer type \"\(type)\" (supported: Sequence, ByteLevel, Metaspace, Split, Digits)")
        }
    }
}
