import RPC
import Runtime

/// `tokenize` and `detokenize` with the model's own tokenizer.
extension Daemon {
    struct TokenizeParams: Decodable {
        var modelId: String
        var text: String
        var addBos: Bool?
    }

    struct DetokenizeParams: Decodable {
        var modelId: String
        var ids: [Int]
        var skipSpecialTokens: Bool?
    }

    func registerTokenizer() {
        router.register("tokenize") { [unowned self] (params: TokenizeParams, _) -> JSONValue in
            let tokenizer = try model(params.modelId).requireTokenizer()
            let ids = tokenizer.encode(params.text, addSpecialTokens: params.addBos ?? true)
            return .object([("ids", .array(ids.map { .int(Int64($0)) }))])
        }

        router.register("detokenize") { [unowned self] (params: DetokenizeParams, _) -> JSONValue in
            let loaded = try model(params.modelId)
            let tokenizer = try loaded.requireTokenizer()
            try Self.checkIds(params.ids, vocabSize: max(tokenizer.vocabularySize, loaded.model.config.vocabSize), field: "ids")
            return .object([("text", .string(tokenizer.decode(params.ids, skipSpecialTokens: params.skipSpecialTokens ?? false)))])
        }
    }

    static func checkIds(_ ids: [Int], vocabSize: Int, field: String) throws {
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocabSize }) {
            throw RPCError.invalidParams(field: "\(field)[\(bad)]", "is \(ids[bad]), outside the vocabulary 0..<\(vocabSize)")
        }
    }
}
