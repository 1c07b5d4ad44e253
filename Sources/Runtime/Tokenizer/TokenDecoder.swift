/// The `decoder` of a tokenizer.json: turns token strings back into text. Each step maps a list of
/// tokens to a list of tokens (tokenizers' `decode_chain`) and the results are concatenated.
/// Tokens are UTF-8 bytes, always valid: the steps that see raw bytes repair them the way
/// tokenizers does (ByteLevel lossily over the whole text, ByteFallback one U+FFFD per byte).
indirect enum TokenDecoder {
    /// Printable stand-ins back to bytes, then `String::from_utf8_lossy` over everything.
    case byteLevel
    /// `<0xAB>` tokens back to bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters from each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case replace(pattern: [UInt8], content: [UInt8])
    /// The replacement character becomes a space, except in the first token unless the scheme is "never".
    case metaspace(replacement: Unicode.Scalar, prependScheme: PreTokenizer.PrependScheme)
    case sequence([TokenDecoder])

    /// Whether a ByteFallback step runs: its output for a run of byte tokens depends on the
    /// whole run, which the streaming decoder must wait for.
    var usesByteFallback: Bool {
        switch self {
        case .byteFallback: return true
        case .sequence(let steps): return steps.contains { $0.usesByteFallback }
        default: return false
        }
    }

    func decode(_ tokens: [[UInt8]]) -> [UInt8] {
        Array(decodeChain(tokens).joined())
    }

    func decodeChain(_ tokens: [[UInt8]]) -> [[UInt8]] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { bytes += ByteLevelAlphabet.decode(token) ?? token }
            return [LossyUTF8.repaired(bytes)]
        case .byteFallback:
            var out: [[UInt8]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if LossyUTF8.isValid(pending) {
                    out.append(pending)
                } else {
                    out += Array(repeating: LossyUTF8.replacement, count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = TokenDecoder.fallbackByte(token) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [Array(tokens.joined())]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let scalars = Array(String(decoding: token, as: UTF8.self).unicodeScalars)
                var lower = 0
                while lower < min(start, scalars.count) && scalars[lower] == content { lower += 1 }
                var upper = scalars.count
                var k = 0
                while k < stop && upper > 0 && scalars[upper - 1] == content { upper -= 1; k += 1 }
                guard lower < upper else { return [] }
                var text = String.UnicodeScalarView()
                text.append(contentsOf: scalars[lower..<upper])
                return Array(String(text).utf8)
            }
        case .replace(let pattern, let content):
            return tokens.map { ByteText.replacing(pattern, with: content, in: $0) }
        case .metaspace(let replacement, let scheme):
            let replacementBytes = Array(String(replacement).utf8)
            return tokens.enumerated().map { index, token in
                ByteText.replacing(replacementBytes, with: index == 0 && scheme != .never ? [] : [0x20], in: token)
            }
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0) }
        }
    }

    /// The byte of a `<0xAB>` token. Mirrors tokenizers: 6 bytes, `<0x` … `>`, and the two
    /// characters between parsed by Rust's `u8::from_str_radix(_, 16)` (which takes a leading `+`).
    static func fallbackByte(_ token: [UInt8]) -> UInt8? {
        guard token.count == 6, token[0] == 0x3C, token[1] == 0x30, token[2] == 0x78, token[5] == 0x3E else { return nil }
        func digit(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        if token[3] == 0x2B { return digit(token[4]) }
        guard let high = digit(token[3]), let low = digit(token[4]) else { return nil }
        return high << 4 | low
    }

    static func parse(_ value: Any, _ path: String, _ json: TokenizerJSON) throws -> TokenDecoder {
        let object = try json.object(value, path)
        let type = try json.type(object, path)
        switch type {
        case "ByteLevel":
            return .byteLevel
        case "ByteFallback":
            return .byteFallback
        case "Fuse":
            return .fuse
        case "Strip":
            let start = try json.int(object["start"], "\(path).start")
            let stop = try json.int(object["stop"], "\(path).stop")
            guard start >= 0, stop >= 0 else { throw json.error(path, "start and stop must not be negative") }
            return .strip(content: try json.scalar(object["content"], "\(path).content"), start: start, stop: stop)
        case "Replace":
            let pattern = try ReplacePattern.parse(object["pattern"], "\(path).pattern", json)
            return .replace(pattern: pattern, content: Array(try json.string(object["content"], "\(path).content").utf8))
        case "Metaspace":
            let replacement = try json.scalar(object["replacement"], "\(path).replacement")
            let scheme: PreTokenizer.PrependScheme
            if let name = try json.optionalString(object, "prepend_scheme", path) {
                guard let parsed = PreTokenizer.PrependScheme(rawValue: name) else {
                    throw json.error("\(path).prepend_scheme", "expected \"always\", \"first\" or \"never\", got \"\(name)\"")
                }
                scheme = parsed
            } else {
                scheme = try json.bool(object, "add_prefix_space", path, default: true) ? .always : .never
            }
            return .metaspace(replacement: replacement, prependScheme: scheme)
        case "Sequence":
            let items = try json.array(object["decoders"], "\(path).decoders")
            return .sequence(try items.enumerated().map { try parse($1, "\(path).decoders[\($0)]", json) })
        default:
            throw json.error("\(path).type", "unsupported decoder type \"\(type)\" (supported: ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence)")
        }
    }
}
