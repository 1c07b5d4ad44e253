/// Decodes generated ids one at a time, returning only text that is final. A byte-level token can
/// end inside a UTF-8 sequence and a SentencePiece token's leading "▁" only becomes a space once
/// something precedes it, so each step decodes a short window: the tokens already emitted last
/// time (the context) plus the new ones, and emits what the window adds beyond the context's text,
/// unless that ends in U+FFFD (an incomplete sequence, held back until more ids arrive or
/// `flush()`). This is the algorithm of tokenizers' `DecodeStream`, plus one rule it lacks: with a
/// ByteFallback decoder, a run of `<0xAB>` tokens is held until the run ends, because one invalid
/// byte turns the whole run into U+FFFDs. Concatenating every piece and `flush()` gives
/// `decode(allIds)`.
public final class StreamingDecoder {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// The window: context ids, then ids not yet emitted.
    private var ids: [Int] = []
    /// The decoded text of the context (`ids[..<contextCount]`).
    private var prefix: [UInt8] = []
    private var contextCount = 0
    /// The last id that reaches the decoder is a `<0xAB>` token of a ByteFallback decoder.
    private var inByteRun = false

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the text that became final (often "", never a partial character).
    public func append(_ id: Int) -> String {
        ids.append(id)
        if let token = tokenizer.decodedToken(id, skipSpecialTokens: skipSpecialTokens) {
            inByteRun = tokenizer.decoder?.usesByteFallback == true && TokenDecoder.fallbackByte(token) != nil
        }
        if inByteRun { return "" }
        let text = decode(ids[...])
        guard text.count > prefix.count, !StreamingDecoder.endsWithReplacement(text),
              text.starts(with: prefix) else { return "" }
        let piece = String(decoding: text[prefix.count...], as: UTF8.self)
        let emitted = ids.count - contextCount
        ids.removeFirst(contextCount)
        contextCount = emitted
        prefix = decode(ids[...])
        return piece
    }

    /// Returns whatever is held back (an incomplete sequence decodes to U+FFFD) and starts over.
    public func flush() -> String {
        let text = decode(ids[...])
        defer {
            ids.removeAll()
            prefix.removeAll()
            contextCount = 0
            inByteRun = false
        }
        guard text.count > prefix.count, text.starts(with: prefix) else { return "" }
        return String(decoding: text[prefix.count...], as: UTF8.self)
    }

    private func decode(_ window: ArraySlice<Int>) -> [UInt8] {
        tokenizer.decodeBytes(window, skipSpecialTokens: skipSpecialTokens)
    }

    private static func endsWithReplacement(_ text: [UInt8]) -> Bool {
        text.count >= 3 && text[text.count - 3] == 0xEF && text[text.count - 2] == 0xBF && text[text.count - 1] == 0xBD
    }
}
