/// The `post_processor` of a tokenizer.json: what `addSpecialTokens` adds around the ids of a
/// single sequence. `TemplateProcessing` is what LLaMA files use ("<s> $A", "<|begin_of_text|> $A");
/// the ByteLevel processor only trims offsets, so it leaves ids alone.
indirect enum TokenPostProcessor {
    case template(before: [Int], after: [Int])
    case byteLevel
    case sequence([TokenPostProcessor])

    func process(_ ids: [Int]) -> [Int] {
        switch self {
        case .template(let before, let after): return before + ids + after
        case .byteLevel: return ids
        case .sequence(let steps): return steps.reduce(ids) { $1.process($0) }
        }
    }

    /// The special ids placed before and after the sequence, over all steps.
    var surroundingIds: (before: [Int], after: [Int]) {
        switch self {
        case .template(let before, let after): return (before, after)
        case .byteLevel: return ([], [])
        case .sequence(let steps):
            return steps.reduce(([], [])) { sum, step in
                let (b, a) = step.surroundingIds
                return (b + sum.0, sum.1 + a)
            }
        }
    }

    static func parse(_ value: Any, _ path: String, _ json: TokenizerJSON) throws -> TokenPostProcessor {
        let object = try json.object(value, path)
        let type = try json.type(object, path)
        switch type {
        case "TemplateProcessing":
            var idsByName: [String: [Int]] = [:]
            if let specials = json.optional(object, "special_tokens") {
                for (name, entry) in try json.object(specials, "\(path).special_tokens").entries {
                    let entryObject = try json.object(entry, "\(path).special_tokens[\"\(name)\"]")
                    let ids = try json.array(entryObject["ids"], "\(path).special_tokens[\"\(name)\"].ids")
                    idsByName[name] = try ids.enumerated().map { try json.int($1, "\(path).special_tokens[\"\(name)\"].ids[\($0)]") }
                }
            }
            var before: [Int] = [], after: [Int] = []
            var seenSequence = false
            let pieces = try json.array(object["single"], "\(path).single")
            for (k, piece) in pieces.enumerated() {
                let piecePath = "\(path).single[\(k)]"
                let pieceObject = try json.object(piece, piecePath)
                if let special = pieceObject["SpecialToken"] {
                    let name = try json.string(try json.object(special, "\(piecePath).SpecialToken")["id"], "\(piecePath).SpecialToken.id")
                    guard let ids = idsByName[name] else {
                        throw json.error(piecePath, "special token \"\(name)\" is missing from special_tokens")
                    }
                    if seenSequence { after += ids } else { before += ids }
                } else if pieceObject["Sequence"] != nil {
                    seenSequence = true
                } else {
                    throw json.error(piecePath, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}")
                }
            }
            return .template(before: before, after: after)
        case "BertProcessing", "RobertaProcessing":
            // Both add cls before and sep after a single sequence: ["[CLS]", 101].
            func id(_ key: String) throws -> Int {
                let pair = try json.array(object[key], "\(path).\(key)")
                guard pair.count == 2 else { throw json.error("\(path).\(key)", "expected [token, id]") }
                return try json.int(pair[1], "\(path).\(key)[1]")
            }
            return .template(before: [try id("cls")], after: [try id("sep")])
        case "ByteLevel":
            return .byteLevel
        case "Sequence":
            let items = try json.array(object["processors"], "\(path).processors")
            return .sequence(try items.enumerated().map { try parse($1, "\(path).processors[\($0)]", json) })
        default:
            throw json.error("\(path).type", "unsupported post-processor type \"\(type)\" (supported: TemplateProcessing, ByteLevel, Sequence, BertProcessing, RobertaProcessing)")
        }
    }
}
