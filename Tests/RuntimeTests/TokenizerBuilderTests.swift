import Foundation
import XCTest
@testable import Runtime

/// The tokenizer `loramd make-model` writes for its random models: exact size, the documented id
/// layout, an exact round trip, determinism, and agreement with the Python `tokenizers` library
/// (through the committed builder-512 fixture, whose reference encodings that library made).
final class TokenizerBuilderTests: XCTestCase {
    static let built4096: Result<Data, Error> = Result { try TokenizerBuilder.byteLevelBPE(corpus: TokenizerBuilder.builtInCorpus, vocabularySize: 4096) }

    func testExactVocabularySizeAndIdLayout() throws {
        for size in [259, 300, 512] {
            let tokenizer = try Tokenizer(tokenizerJSON: TokenizerBuilder.byteLevelBPE(corpus: TokenizerBuilder.builtInCorpus, vocabularySize: size))
            XCTAssertEqual(tokenizer.vocabularySize, size)
        }
        let tokenizer = try Tokenizer(tokenizerJSON: Self.built4096.get())
        XCTAssertEqual(tokenizer.vocabularySize, 4096)
        XCTAssertEqual((0..<3).map { tokenizer.token(for: $0) }, ["<unk>", "<s>", "</s>"])
        XCTAssertEqual(tokenizer.specialTokenIds, [0, 1, 2])
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        // The 256 byte tokens follow, in the order of their printable stand-ins.
        XCTAssertEqual(tokenizer.token(for: 3), "!")
        XCTAssertEqual(tokenizer.token(for: 258), "Ń")
        XCTAssertEqual(Set((3..<259).compactMap { tokenizer.token(for: $0) }).count, 256)
        XCTAssertEqual(tokenizer.encode("Hi"), [1] + tokenizer.encode("Hi", addSpecialTokens: false))
    }

    func testBuiltInCorpusRoundTripsExactly() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: Self.built4096.get())
        let corpus = TokenizerBuilder.builtInCorpus
        XCTAssertGreaterThan(corpus.utf8.count, 20_000)
        let ids = tokenizer.encode(corpus, addSpecialTokens: false)
        XCTAssertEqual(tokenizer.decode(ids), corpus)
        XCTAssertEqual(tokenizer.decode(tokenizer.encode(corpus), skipSpecialTokens: true), corpus)
        // Merges learned on the corpus compress it: well under one token per 2 bytes.
        XCTAssertLessThan(ids.count * 2, corpus.utf8.count)
        for text in ["Ünïcödé 中文 😀", "", "  spaces  and\ttabs\n", "<s> literal </s>"] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text, addSpecialTokens: false)), text)
        }
    }

    func testOutputIsDeterministic() throws {
        XCTAssertEqual(try TokenizerBuilder.byteLevelBPE(corpus: TokenizerBuilder.builtInCorpus, vocabularySize: 4096),
                       try Self.built4096.get())
        XCTAssertEqual(TokenizerBuilder.builtInCorpus, BuiltInCorpus.paragraphs(seed: BuiltInCorpus.seed, bytes: 70_000).joined(separator: "\n\n") + "\n")
        // Another seed: other paragraphs of the same kind, about as many bytes as asked for.
        let heldOut = TokenizerBuilder.corpusParagraphs(seed: 2, bytes: 10_000)
        XCTAssertEqual(heldOut, TokenizerBuilder.corpusParagraphs(seed: 2, bytes: 10_000))
        XCTAssertTrue(Set(heldOut).isDisjoint(with: TokenizerBuilder.builtInCorpus.components(separatedBy: "\n\n")))
        XCTAssertGreaterThanOrEqual(heldOut.reduce(0) { $0 + $1.utf8.count + 2 }, 10_000)
    }

    /// The committed fixture was written by this builder; the Python library produced its cases
    /// (checked by TokenizerFixtureTests), so equal bytes mean Python agrees with today's builder.
    func testMatchesTheFixtureCheckedAgainstPython() throws {
        let fixture = try Data(contentsOf: TokenizerFixtures.tokenizers.appendingPathComponent("builder-512/tokenizer.json"))
        XCTAssertEqual(try TokenizerBuilder.byteLevelBPE(corpus: TokenizerBuilder.builtInCorpus, vocabularySize: 512), fixture)
    }

    func testRejectsSizesItCannotMake() {
        XCTAssertThrowsError(try TokenizerBuilder.byteLevelBPE(corpus: "abc", vocabularySize: 258)) { error in
            XCTAssertEqual(error as? TokenizerBuilderError, .vocabularyTooSmall(requested: 258, minimum: 259))
        }
        XCTAssertThrowsError(try TokenizerBuilder.byteLevelBPE(corpus: "ab ab abc", vocabularySize: 300)) { error in
            guard case .corpusExhausted(requested: 300, let reached)? = error as? TokenizerBuilderError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(reached, 259 + 3)  // "ab", "Ġab", "Ġabc"
            XCTAssertTrue("\(error)".contains("ran out of pairs"))
        }
    }
}
