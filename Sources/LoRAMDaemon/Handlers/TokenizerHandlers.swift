import Foundation
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
        router.register("tokenize") { [unowned self] (params: TokenizeParams, context) -> RawJSON in
            let loaded = try model(params.modelId)
            let tokenizer = try loaded.requireTokenizer()
            // The text's working copies, its ids and their reply are charged until the reply is written.
            let bytes = Self.tokenizeBytes(textBytes: params.text.utf8.count, vocabSize: max(tokenizer.vocabularySize, loaded.model.config.vocabSize))
            let owner = "request \(context.id) tokenize"
            do {
                try ledger.charge(Int64(bytes), to: owner, breakdown: .object([("tokenize", .int(Int64(bytes)))]))
            } catch let error as RPCError where error.code == .overBudget {
                throw RPCError(.overBudget, "Over budget: tokenizing \(params.text.utf8.count) bytes of text needs up to \(bytes) bytes, \(max(0, ledger.capBytes - ledger.usedBytes)) of \(ledger.capBytes) are free",
                               hint: "Tokenize the text in parts (a few megabytes each), or raise hbmCapBytes.",
                               data: [("needBytes", .int(ledger.usedBytes + Int64(bytes))), ("capBytes", .int(ledger.capBytes)),
                                      ("breakdown", .object([("tokenize", .int(Int64(bytes)))])), ("suggestion", .null)])
            }
            context.whenAnswered { [ledger] in ledger.release(owner) }
            return RawJSON.object("ids", integers: tokenizer.encode(params.text, addSpecialTokens: params.addBos ?? true))
        }

        router.register("detokenize") { [unowned self] (params: DetokenizeParams, _) -> DetokenizeResult in
            let loaded = try model(params.modelId)
            let tokenizer = try loaded.requireTokenizer()
            try Self.checkIds(params.ids, vocabSize: max(tokenizer.vocabularySize, loaded.model.config.vocabSize), field: "ids")
            return DetokenizeResult(text: tokenizer.decode(params.ids, skipSpecialTokens: params.skipSpecialTokens ?? false))
        }
    }

    /// What `tokenize` holds beyond its params, at most: two copies of the text's bytes (the
    /// UTF-8 array and the piece being split), the split's scanner (about 32 bytes a byte of its
    /// chunk, 64 kB of text unless the text has no line break nor space after a letter), and per
    /// token (one a byte at most, plus the specials) its id and its digits and comma in the reply.
    static func tokenizeBytes(textBytes: Int, vocabSize: Int) -> Int {
        let tokens = textBytes + 8
        return 2 * textBytes + 32 * min(textBytes, 1 << 17) + tokens * (MemoryLayout<Int>.size + String(max(1, vocabSize)).utf8.count + 1)
    }

    static func checkIds(_ ids: [Int], vocabSize: Int, field: String) throws {
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= vocabSize }) {
            throw RPCError.invalidParams(field: "\(field)[\(bad)]", "is \(ids[bad]), outside the vocabulary 0..<\(vocabSize)")
        }
    }
}

struct DetokenizeResult: WireResult {
    var text: String
}
