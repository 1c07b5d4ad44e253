import Foundation
import XCTest
@testable import Runtime

/// Where the tokenizer tests' fixtures live, under Tests/Fixtures.
enum TokenizerFixtures {
    /// The golden tiny model's directory (tokenizer.json, tokenizer_config.json).
    static let golden = Fixtures.tinyModel
    /// The golden JSON files (tiny_tokenizer_golden.json, tiny_greedy_golden.json, ...).
    static let goldenData = Fixtures.golden
    static let tokenizers = Fixtures.root.appendingPathComponent("tokenizers")
}

/// Every fixture in Fixtures/tokenizers, made with the Python `tokenizers` library by
/// scripts/make-tokenizer-fixtures.py: LLaMA-2 SentencePiece-style BPE, Metaspace variants,
/// LLaMA-3 byte-level with ignore_merges and added-token options, GPT-2 with a prefix space,
/// split behaviors, subword affixes, and the TokenizerBuilder's own output. Every case is exact.
final class TokenizerFixtureTests: XCTestCase {
    struct Fixture {
        let name: String
        let tokenizer: Tokenizer
        let cases: [TokenizerJSONParser.Object]
        let decodeCases: [TokenizerJSONParser.Object]
    }

    static func fixtures() throws -> [Fixture] {
        let names = try FileManager.default.contentsOfDirectory(atPath: TokenizerFixtures.tokenizers.path).sorted()
        return try names.map { name in
            let folder = TokenizerFixtures.tokenizers.appendingPathComponent(name)
            // Parsed like tokenizer.json: JSONSerialization on Linux loses some U+FEFF characters.
            let root = try TokenizerJSONParser.parse([UInt8](Data(contentsOf: folder.appendingPathComponent("cases.json")))) as! TokenizerJSONParser.Object
            return Fixture(name: name, tokenizer: try Tokenizer(directory: folder),
                           cases: (root["cases"] as! [Any]).map { $0 as! TokenizerJSONParser.Object },
                           decodeCases: (root["decode_cases"] as! [Any]).map { $0 as! TokenizerJSONParser.Object })
        }
    }

    static func ints(_ value: Any?) -> [Int] { (value as! [Any]).map { $0 as! Int } }

    func testEncodeAndDecodeMatchTheReferenceLibrary() throws {
        var checked = 0
        let fixtures = try Self.fixtures()
        XCTAssertGreaterThanOrEqual(fixtures.count, 9)
        for fixture in fixtures {
            let tokenizer = fixture.tokenizer
            for c in fixture.cases {
                let text = c["text"] as! String
                let label = "\(fixture.name): \(text.debugDescription)"
                let ids = Self.ints(c["ids"]), plain = Self.ints(c["ids_no_special"])
                XCTAssertEqual(tokenizer.encode(text), ids, label)
                XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), plain, label)
                let decoded = c["decoded"] as? String ?? text
                let decodedSkip = c["decoded_skip"] as? String ?? decoded
                XCTAssertEqual(Array(tokenizer.decode(plain).utf8), Array(decoded.utf8), label)
                XCTAssertEqual(Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8), Array(decodedSkip.utf8), label)
                checked += 1
            }
            for c in fixture.decodeCases {
                let ids = Self.ints(c["ids"])
                let label = "\(fixture.name): decode \(ids)"
                XCTAssertEqual(Array(tokenizer.decode(ids).utf8), Array((c["decoded"] as! String).utf8), label)
                XCTAssertEqual(Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8), Array((c["decoded_skip"] as! String).utf8), label)
                checked += 1
            }
        }
        print("tokenizer fixtures: \(fixtures.count) tokenizers, \(checked) cases checked")
    }

    /// Fed one id at a time, the streaming decoder's pieces plus `flush()` are `decode(ids)`.
    func testStreamingDecoderPiecesConcatenateToDecode() throws {
        for fixture in try Self.fixtures() {
            let tokenizer = fixture.tokenizer
            let idLists = (fixture.cases + fixture.decodeCases).map { Self.ints($0["ids"]) }
            for ids in idLists {
                for skip in [true, false] {
                    let stream = tokenizer.makeStreamingDecoder(skipSpecialTokens: skip)
                    var pieces = ids.map { stream.append($0) }
                    pieces.append(stream.flush())
                    XCTAssertEqual(Array(pieces.joined().utf8), Array(tokenizer.decode(ids, skipSpecialTokens: skip).utf8),
                                   "\(fixture.name) skip \(skip): \(ids)")
                    XCTAssertFalse(pieces.dropLast().contains { $0.unicodeScalars.last == "\u{FFFD}" && !tokenizer.decode(ids, skipSpecialTokens: skip).contains("\u{FFFD}") })
                }
            }
        }
    }
}
