import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated tokenizer.json files (and tokenizer_config.json beside them): parsing succeeds or is a
/// FormatError, and a tokenizer that parses encodes and decodes without trapping.
final class TokenizerFuzzTests: XCTestCase {
    static let texts = ["Hello world", " the  cat\n\tsat 123 ", "é ü 日本 🙂", "<s>a</s><unk>", ""]

    static func validTokenizers() throws -> [Data] {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Fixtures.root.appendingPathComponent("tokenizers").path).sorted()
        return try [Fixtures.tinyModel] .map { try Data(contentsOf: $0.appendingPathComponent("tokenizer.json")) }
            + folders.map { try Data(contentsOf: Fixtures.root.appendingPathComponent("tokenizers/\($0)/tokenizer.json")) }
    }

    static let config = Data(#"{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": {"content": "</s>"}, "unk_token": "<unk>"}"#.utf8)

    func testMutatedTokenizersParseOrAreFormatErrors() throws {
        let sources = try Self.validTokenizers()
        XCTAssertGreaterThanOrEqual(sources.count, 10)
        for data in sources { XCTAssertNoThrow(try Tokenizer(tokenizerJSON: data)) }
        fuzz("tokenizer-json", cases: 300) { random, _ in
            let source = sources[Int(random.next() % UInt64(sources.count))]
            let json = random.next() % 3 == 0 ? Data(ByteMutator.mutate([UInt8](source), &random)) : JSONMutator.mutate(source, &random)
            let config = random.next() % 4 == 0 ? JSONMutator.mutate(Self.config, &random) : (random.next() % 2 == 0 ? Self.config : nil)
            let tokenizer = try Tokenizer(tokenizerJSON: json, config: config)
            for text in Self.texts {
                let ids = tokenizer.encode(text)
                XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize }, "ids \(ids) outside 0..<\(tokenizer.vocabularySize)")
                _ = tokenizer.decode(ids)
            }
            _ = tokenizer.decode(Array(0..<min(tokenizer.vocabularySize, 300)), skipSpecialTokens: random.next() % 2 == 0)
        }
    }

    /// Found by the fuzz test: a template id past the vocabulary loaded, and encode emitted an id
    /// no token (and no model row) has.
    func testATemplateIdOutsideTheVocabularyIsAFormatError() throws {
        let source = String(decoding: try Data(contentsOf: Fixtures.tinyModel.appendingPathComponent("tokenizer.json")), as: UTF8.self)
        XCTAssertEqual(try Tokenizer(tokenizerJSON: Data(source.utf8)).encode("a").first, 1)
        for id in ["512", "-1", "100000"] {
            let mutated = source.replacingOccurrences(of: "\"ids\": [\n          1\n", with: "\"ids\": [\(id)\n")
            XCTAssertNotEqual(mutated, source)
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: Data(mutated.utf8))) { error in
                XCTAssertEqual((error as? FormatError)?.problem, "post_processor: special token id \(id) is not in the vocabulary (0..<512)")
            }
        }
    }
}
