import Foundation
import XCTest
@testable import Runtime

/// The tiny model's byte-level BPE against the 30 golden cases produced by tokenizers 0.23.3
/// (Tests/Fixtures/golden, copied from ../shared/golden): ids with and without BOS, token strings,
/// and both decodes, all exact.
final class TokenizerGoldenTests: XCTestCase {
    struct Case {
        let text: String
        let idsWithBos: [Int]
        let idsNoBos: [Int]
        let tokensNoBos: [String]
        let decodedNoBos: String
        let decodedWithBosSkipSpecial: String
    }

    static func cases() throws -> [Case] {
        let url = TokenizerFixtures.goldenData.appendingPathComponent("tiny_tokenizer_golden.json")
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (root["cases"] as! [[String: Any]]).map { c in
            // utf8_hex is authoritative for the input text.
            let hex = Array((c["utf8_hex"] as! String).utf8)
            let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
            return Case(text: String(decoding: bytes, as: UTF8.self),
                        idsWithBos: c["ids_with_bos"] as! [Int],
                        idsNoBos: c["ids_no_bos"] as! [Int],
                        tokensNoBos: c["tokens_no_bos"] as! [String],
                        decodedNoBos: c["decoded_no_bos"] as! String,
                        decodedWithBosSkipSpecial: c["decoded_with_bos_skip_special"] as! String)
        }
    }

    func testEveryGoldenCaseMatchesExactly() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let cases = try Self.cases()
        XCTAssertEqual(cases.count, 30)
        for c in cases {
            let label = c.text.debugDescription
            XCTAssertEqual(tokenizer.encode(c.text), c.idsWithBos, label)
            let ids = tokenizer.encode(c.text, addSpecialTokens: false)
            XCTAssertEqual(ids, c.idsNoBos, label)
            XCTAssertEqual(ids.map { tokenizer.token(for: $0).map { Array($0.utf8) } ?? [] },
                           c.tokensNoBos.map { Array($0.utf8) }, label)
            XCTAssertEqual(Array(tokenizer.decode(c.idsNoBos).utf8), Array(c.decodedNoBos.utf8), label)
            XCTAssertEqual(Array(tokenizer.decode(c.idsWithBos, skipSpecialTokens: true).utf8),
                           Array(c.decodedWithBosSkipSpecial.utf8), label)
        }
    }

    func testVocabularyAndSpecialTokensOfTheTinyTokenizer() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        XCTAssertEqual(tokenizer.vocabularySize, 512)
        XCTAssertEqual(tokenizer.bosTokenId, 1)
        XCTAssertEqual(tokenizer.eosTokenId, 2)
        XCTAssertEqual(tokenizer.specialTokenIds, [0, 1, 2])
        XCTAssertEqual(tokenizer.token(for: 223), "Ġ")
        XCTAssertEqual(tokenizer.id(for: "Ġthe"), 315)
        XCTAssertNil(tokenizer.token(for: 512))
        XCTAssertNil(tokenizer.token(for: -1))
        XCTAssertNil(tokenizer.id(for: "no such token"))
    }

    /// Greedy generations of the random tiny model are full of cut-off UTF-8: decode must give
    /// transformers' text (U+FFFD per invalid sequence, as `from_utf8_lossy`), and streaming too.
    func testRandomModelGenerationsDecodeLikeTransformers() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let root = try Fixtures.json("tiny_greedy_golden.json")
        for c in root["cases"] as! [[String: Any]] {
            let generated = c["generated_ids"] as! [Int]
            let hex = Array((c["generated_bytes_hex"] as! String).utf8)
            let bytes = stride(from: 0, to: hex.count, by: 2).map { UInt8(String(decoding: hex[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
            XCTAssertEqual(Array(tokenizer.decode(generated).utf8), Array((c["generated_text"] as! String).utf8))
            XCTAssertEqual(Array(tokenizer.decode(generated).utf8), Array(LossyUTF8.string(bytes).utf8))
            let all = (c["prompt_ids"] as! [Int]) + generated
            XCTAssertEqual(Array(tokenizer.decode(all, skipSpecialTokens: true).utf8), Array((c["full_text"] as! String).utf8))
            let stream = tokenizer.makeStreamingDecoder()
            XCTAssertEqual(generated.map { stream.append($0) }.joined() + stream.flush(), c["generated_text"] as! String)
        }
    }

    /// The golden prompt of the model tests encodes to the ids the logits were computed for.
    func testModelGoldenPromptIds() throws {
        let tokenizer = try Tokenizer(directory: TokenizerFixtures.golden)
        let root = try Fixtures.json("tiny_golden.json")
        XCTAssertEqual(tokenizer.encode(root["prompt"] as! String), root["input_ids"] as! [Int])
    }
}
