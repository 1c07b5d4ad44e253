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
        var out: [PreToken] = []
        for piece in pieces { forEachWord(of: piece) { out.append($0) } }
        return out
    }

    /// Calls `body` with each word of `piece`, in order: what `apply` returns, one word at a time,
    /// so a long text never holds all its words at once. Every step works on each piece alone,
    /// so running the steps depth-first gives the words the step-by-step order gives.
    func forEachWord(of piece: PreToken, _ body: (PreToken) -> Void) {
        switch self {
        case .sequence(let steps):
            PreTokenizer.run(steps[...], on: piece, body)
        case .byteLevel(let addPrefixSpace, let useRegex):
            var piece = piece
            if addPrefixSpace && piece.bytes.first != 0x20 { piece.bytes.insert(0x20, at: 0) }
            func encode(_ word: PreToken) { body(PreToken(bytes: ByteLevelAlphabet.encode(word.bytes), atStart: word.atStart)) }
            guard useRegex else { return encode(piece) }
            PreTokenizer.split(piece, .isolated, matches: { SplitRegex.gpt2.forEachMatch(in: piece.bytes, $0) }, encode)
        case .metaspace(let replacement, let scheme, let split):
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
            guard split else { return body(piece) }
            let found = ByteText.occurrences(of: replacement, in: piece.bytes)
            PreTokenizer.split(piece, .mergedWithNext, matches: { found.forEach($0) }, body)
        case .split(let pattern, let behavior, let invert):
            switch pattern {
            case .literal(let literal):
                let found = ByteText.occurrences(of: literal, in: piece.bytes)
                PreTokenizer.split(piece, behavior, invert: invert, matches: { found.forEach($0) }, body)
            case .regex(let regex):
                PreTokenizer.split(piece, behavior, invert: invert, matches: { regex.forEachMatch(in: piece.bytes, $0) }, body)
            }
        case .digits(let individual):
            let found = ByteText.scalarRanges(piece.bytes).filter { PreTokenizer.isNumeric($0.scalar) }.map(\.range)
            PreTokenizer.split(piece, individual ? .isolated : .contiguous, matches: { found.forEach($0) }, body)
        }
    }

    /// `steps` applied in order to `piece`, depth-first.
    private static func run(_ steps: ArraySlice<PreTokenizer>, on piece: PreToken, _ body: (PreToken) -> Void) {
        guard let first = steps.first else { return body(piece) }
        first.forEachWord(of: piece) { run(steps.dropFirst(), on: $0, body) }
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
        var out: [PreToken] = []
        split(piece, behavior, invert: invert, matches: { emit in matches.forEach { emit($0.0) } }) { out.append($0) }
        return out
    }

    /// The same split, streamed: `matches` calls its argument with each match in order, and
    /// `body` gets each kept part as soon as no later part can merge into it.
    static func split(_ piece: PreToken, _ behavior: SplitBehavior, invert: Bool = false,
                      matches: ((Range<Int>) -> Void) -> Void, _ body: (PreToken) -> Void) {
        // Each part is given out before the next match is asked for; nothing re-enters.
        withoutActuallyEscaping(body) { body in splitParts(piece, behavior, invert: invert, matches: matches, body) }
    }

    private static func splitParts(_ piece: PreToken, _ behavior: SplitBehavior, invert: Bool,
                                   matches: ((Range<Int>) -> Void) -> Void, _ body: @escaping (PreToken) -> Void) {
        // The kept range not yet given out: a later part may still merge into it.
        var pending: Range<Int>?
        // mergedWithNext: the match waiting for the part after it.
        var previousMatch = false
        func give(_ range: Range<Int>) {
            guard !range.isEmpty else { return }
            body(PreToken(bytes: Array(piece.bytes[range]), atStart: piece.atStart && range.lowerBound == 0))
        }
        func part(_ range: Range<Int>, _ isMatch: Bool) {
            switch behavior {
            case .isolated:
                give(range)
            case .removed:
                if !isMatch { give(range) }
            case .contiguous:
                if isMatch == previousMatch, let last = pending {
                    pending = last.lowerBound..<range.upperBound
                } else {
                    pending.map(give)
                    pending = range
                }
            case .mergedWithPrevious:
                if isMatch && !previousMatch, let last = pending {
                    pending = last.lowerBound..<range.upperBound
                } else {
                    pending.map(give)
                    pending = range
                }
            case .mergedWithNext:
                // A match joins the part after it when that part is not a match.
                if let last = pending, previousMatch, !isMatch {
                    give(last.lowerBound..<range.upperBound)
                    pending = nil
                } else {
                    pending.map(give)
                    pending = nil
                    if isMatch { pending = range } else { give(range) }
                }
            }
            previousMatch = isMatch
        }
        let count = piece.bytes.count
        var previous = 0
        var any = false
        matches { range in
            if previous != range.lowerBound { part(previous..<range.lowerBound, invert) }
            part(range, !invert)
            previous = range.upperBound
            any = true
        }
        if previous != count || !any { part(previous..<count, invert) }
        pending.map(give)
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
