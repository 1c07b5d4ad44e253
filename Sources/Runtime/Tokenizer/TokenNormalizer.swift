import Foundation

/// The `normalizer` of a tokenizer.json: rewrites each stretch of input text between added tokens
/// before pre-tokenization. LLaMA-2 / Mistral files use `Sequence[Prepend("▁"), Replace(" ", "▁")]`,
/// which is how SentencePiece marks word starts. Text is UTF-8 bytes throughout: the rewrites are
/// byte-exact and never subject to Swift's canonical-equivalence string comparison. Qwen2 files use
/// `NFC`.
indirect enum TokenNormalizer {
    case sequence([TokenNormalizer])
    /// Prepends the text to a non-empty piece.
    case prepend([UInt8])
    /// Replaces every non-overlapping occurrence of a literal, left to right.
    case replace(pattern: [UInt8], content: [UInt8])
    /// Removes leading and/or trailing Unicode White_Space.
    case strip(left: Bool, right: Bool)
    /// Unicode canonical composition (NFC).
    case nfc

    func apply(_ text: [UInt8]) -> [UInt8] {
        switch self {
        case .sequence(let normalizers):
            return normalizers.reduce(text) { $1.apply($0) }
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            return ByteText.replacing(pattern, with: content, in: text)
        case .strip(let left, let right):
            let scalars = ByteText.scalarRanges(text)
            var lower = 0, upper = scalars.count
            if left { while lower < upper, scalars[lower].scalar.properties.isWhitespace { lower += 1 } }
            if right { while upper > lower, scalars[upper - 1].scalar.properties.isWhitespace { upper -= 1 } }
            guard lower < upper else { return [] }
            return Array(text[scalars[lower].range.lowerBound..<scalars[upper - 1].range.upperBound])
        case .nfc:
            // ASCII is always NFC; other text goes through Foundation's normalizer.
            guard text.contains(where: { $0 >= 0x80 }) else { return text }
            return Array(String(decoding: text, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        }
    }

    static func parse(_ value: Any, _ path: String, _ json: TokenizerJSON) throws -> TokenNormalizer {
        let object = try json.object(value, path)
        let type = try json.type(object, path)
        switch type {
        case "Sequence":
            let items = try json.array(object["normalizers"], "\(path).normalizers")
            return .sequence(try items.enumerated().map { try parse($1, "\(path).normalizers[\($0)]", json) })
        case "Prepend":
            return .prepend(Array(try json.string(object["prepend"], "\(path).prepend").utf8))
        case "Replace":
            let pattern = try ReplacePattern.parse(object["pattern"], "\(path).pattern", json)
            return .replace(pattern: pattern, content: Array(try json.string(object["content"], "\(path).content").utf8))
        case "NFC":
            return .nfc
        case "Strip":
            return .strip(left: try json.bool(object, "strip_left", path, default: true),
                          right: try json.bool(object, "strip_right", path, default: true))
        default:
            throw json.error("\(path).type", "unsupported normalizer type \"\(type)\" (supported: Sequence, Prepend, Replace, Strip, NFC)")
        }
    }
}

/// The `pattern` of a Replace normalizer or decoder: `{"String": "▁"}`. Regex patterns are not
/// supported (no LLaMA-family file uses one).
enum ReplacePattern {
    static func parse(_ value: Any?, _ path: String, _ json: TokenizerJSON) throws -> [UInt8] {
        let object = try json.object(value, path)
        if let literal = object["String"] {
            return Array(try json.string(literal, "\(path).String").utf8)
        }
        if object["Regex"] != nil {
            throw json.error(path, "unsupported Replace pattern: a Regex (only String patterns are supported)")
        }
        throw json.error(path, "expected {\"String\": ...}")
    }
}
