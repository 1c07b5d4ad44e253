import Foundation
import XCTest
@testable import Runtime

/// The streaming decoder returns only final text, holds back incomplete UTF-8 and byte-fallback
/// runs, and its pieces plus `flush()` always concatenate to `decode(ids)`.
final class TokenizerStreamingDecoderTests: XCTestCase {
    func sentencePiece() throws -> Tokenizer {
        try Tokenizer(directory: TokenizerFixtures.tokenizers.appendingPathComponent("llama2-sentencepiece"))
    }

    func pieces(_ tokenizer: Tokenizer, _ ids: [Int], skipSpecialTokens: Bool = true) -> [String] {
        let stream = tokenizer.makeStreamingDecoder(skipSpecialTokens: skipSpecialTokens)
        return ids.map { stream.append($0) } + [stream.flush()]
    }

    func testHoldsBackAnIncompleteCharacter() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let ids = tokenizer.encode("中!", addSpecialTokens: false)  // three byte tokens, then "!"
        XCTAssertEqual(ids.count, 4)
        XCTAssertEqual(pieces(tokenizer, ids), ["", "", "中", "!", ""])
    }

    func testFlushGivesWhatDecodeGivesForATruncatedCharacter() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let ids = Array(tokenizer.encode("中", addSpecialTokens: false).prefix(2))
        XCTAssertEqual(pieces(tokenizer, ids), ["", "", "\u{FFFD}"])
        XCTAssertEqual(tokenizer.decode(ids), "\u{FFFD}")
    }

    func testSentencePieceSpacesComeOutAsInDecode() throws {
        let tokenizer = try sentencePiece()
        let ids = tokenizer.encode("The rain in Spain")
        let out = pieces(tokenizer, ids)
        XCTAssertEqual(out.joined(), "The rain in Spain")
        XCTAssertEqual(out.first(where: { !$0.isEmpty }), "The", "the first token's leading space is stripped, as in decode")
        XCTAssertEqual(pieces(tokenizer, ids, skipSpecialTokens: false).joined(), "<s> The rain in Spain")
    }

    func testByteFallbackRunIsHeldUntilItEnds() throws {
        let tokenizer = try sentencePiece()
        let bytes = ["<0xE4>", "<0xB8>", "<0xAD>"].map { tokenizer.id(for: $0)! }
        let a = tokenizer.id(for: "a")!
        XCTAssertEqual(pieces(tokenizer, bytes + [a]), ["", "", "", "中a", ""])
        // One bad byte turns the whole run into U+FFFDs, so nothing of it may be emitted early.
        let bad = bytes + [tokenizer.id(for: "<0xE4>")!, a]
        XCTAssertEqual(pieces(tokenizer, bad).joined(), "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}a")
        XCTAssertEqual(tokenizer.decode(bad), "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}a")
    }

    func testStartsOverAfterFlush() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let stream = tokenizer.makeStreamingDecoder()
        let first = tokenizer.encode("Hello", addSpecialTokens: false)
        XCTAssertEqual(first.map { stream.append($0) }.joined() + stream.flush(), "Hello")
        XCTAssertEqual(first.map { stream.append($0) }.joined() + stream.flush(), "Hello")
    }

    /// Random ids (partial UTF-8, byte-fallback runs, special and out-of-range ids) on a
    /// byte-level and a SentencePiece tokenizer.
    func testRandomIdsConcatenateToDecode() throws {
        var generator = BuiltInCorpus.Generator(state: 42)
        for tokenizer in [try Tokenizer(directory: TokenizerFixtures.golden), try sentencePiece(),
                          try Tokenizer(directory: TokenizerFixtures.tokenizers.appendingPathComponent("metaspace-first"))] {
            for _ in 0..<300 {
                let ids = (0..<(1 + generator.below(24))).map { _ in generator.below(tokenizer.vocabularySize + 4) - 2 }
                for skip in [true, false] {
                    let out = pieces(tokenizer, ids, skipSpecialTokens: skip)
                    XCTAssertEqual(Array(out.joined().utf8), Array(tokenizer.decode(ids, skipSpecialTokens: skip).utf8), "\(ids)")
                }
            }
        }
    }
}
