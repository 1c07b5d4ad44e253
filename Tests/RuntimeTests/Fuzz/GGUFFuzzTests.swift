import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated GGUF files: models (F32 and block-quantized, and the multi-type fixture), LoRA
/// adapters, and tokenizer metadata. Opening, reading the config or tokenizer, and loading
/// succeed or are FormatErrors (adapters may also be AdapterShapeMismatch); never a trap, a hang,
/// or another error. Aimed mutations hit every u64 in the header that looks like a length, count,
/// dimension or offset.
final class GGUFFuzzTests: XCTestCase {
    /// Offsets of little-endian u64 values in 1..<2^20 before `end`: the header's lengths,
    /// counts, dimensions and offsets (and some bytes of strings, which does no harm).
    static func lengthFields(_ bytes: [UInt8], end: Int) -> [Int] {
        (0..<max(0, min(end, bytes.count) - 8)).filter { i in
            let value = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * UInt64($1)) }
            return value > 0 && value < 1 << 20
        }
    }

    /// Hidden 32 so the linears are whole Q8_0 / Q4_0 blocks.
    static var config: ModelConfig {
        ModelConfig(hiddenSize: 32, intermediateSize: 64, layerCount: 2, headCount: 2, kvHeadCount: 1,
                    headDim: 16, vocabSize: 40, maxPositionEmbeddings: 64)
    }

    func testMutatedGGUFModelsLoadOrAreFormatErrors() throws {
        let directory = try temporaryDirectory()
        let model = FuzzModels.microModel(Self.config)
        var sources: [(bytes: [UInt8], fields: [Int])] = []
        for type in [GGUFTensorType.f32, .q8_0, .q4_K] {
            let url = directory.appendingPathComponent("source.gguf")
            try model.saveGGUF(to: url, type: type)
            let file = try GGUFFile(url: url)
            let bytes = [UInt8](try Data(contentsOf: url))
            sources.append((bytes, Self.lengthFields(bytes, end: file.dataOffset)))
        }
        let url = directory.appendingPathComponent("model.gguf")
        fuzz("gguf-model", cases: 1500) { random, _ in
            let source = sources[Int(random.next() % UInt64(sources.count))]
            try FileFuzzing.write(Data(ByteMutator.mutate(source.bytes, &random, fields: source.fields)), to: url)
            let checkpoint = try ModelCheckpoint.open(url)
            let dtype = [nil, TensorDType.f32, .bf16][Int(random.next() % 3)]
            _ = checkpoint.plannedBytes(dtype: dtype)
            let loaded = try checkpoint.loadModel(dtype: dtype)
            XCTAssertEqual(loaded.config, checkpoint.config)
        }
    }

    /// The fixture with one tensor of each type loramd reads: every tensor decoded after opening.
    func testMutatedGGUFTensorFilesOpenOrAreFormatErrors() throws {
        let source = Fixtures.root.appendingPathComponent("gguf/types.gguf")
        let bytes = [UInt8](try Data(contentsOf: source))
        let fields = Self.lengthFields(bytes, end: try GGUFFile(url: source).dataOffset)
        let url = try temporaryDirectory().appendingPathComponent("types.gguf")
        fuzz("gguf-file", cases: 1500) { random, _ in
            try FileFuzzing.write(Data(ByteMutator.mutate(bytes, &random, fields: fields)), to: url)
            let file = try GGUFFile(url: url)
            for name in file.tensorNames {
                let info = file.tensors[name]!
                guard info.type.isDequantizable, info.elementCount <= 1 << 20 else { continue }
                var values = [Float](repeating: 0, count: info.elementCount)
                try values.withUnsafeMutableBufferPointer { try file.dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
            }
        }
    }

    func testMutatedGGUFAdaptersLoadOrAreContractErrors() throws {
        let directory = try temporaryDirectory()
        let model = FuzzModels.microModel(Self.config)
        let adapter = LoRAAdapter(config: model.config, rank: 2, alpha: 4, targets: [.q, .k, .down, .lmHead])
        let sourceURL = directory.appendingPathComponent("source.gguf")
        try GGUFAdapterFile.save(adapter, config: model.config, to: sourceURL)
        let bytes = [UInt8](try Data(contentsOf: sourceURL))
        let fields = Self.lengthFields(bytes, end: try GGUFFile(url: sourceURL).dataOffset)
        XCTAssertEqual(try GGUFAdapterFile.load(GGUFFile(url: sourceURL), model: model).targets, [.q, .k, .down, .lmHead])
        let url = directory.appendingPathComponent("adapter.gguf")
        fuzz("gguf-adapter", cases: 2000, allowing: [AdapterShapeMismatch.self]) { random, _ in
            try FileFuzzing.write(Data(ByteMutator.mutate(bytes, &random, fields: fields)), to: url)
            let file = try GGUFFile(url: url)
            let header = try GGUFAdapterFile.header(file, layerCount: model.config.layerCount, family: model.config.family)
            let loaded = try GGUFAdapterFile.load(file, model: model)
            XCTAssertEqual(loaded.rank, header.rank)
        }
    }

    /// Tokenizer metadata mutated as bytes in the file, or as values: a key dropped, a value
    /// replaced by another type or an edge integer, a list cut short or emptied.
    func testMutatedGGUFTokenizersParseOrAreFormatErrors() throws {
        let folder = Fixtures.root.appendingPathComponent("gguf-tokenizer")
        let sources = try ["byte-level-llama3.gguf", "spm-bpe-1000.gguf", "spm-variant.gguf"].map { try GGUFFile(url: folder.appendingPathComponent($0)) }
        for file in sources { XCTAssertNoThrow(try Tokenizer(ggufMetadata: file.metadata, fileName: file.fileName)) }
        let sourceBytes = try sources.map { [UInt8](try Data(contentsOf: $0.url)) }
        let url = try temporaryDirectory().appendingPathComponent("tokenizer.gguf")
        fuzz("gguf-tokenizer", cases: 400) { random, _ in
            let k = Int(random.next() % UInt64(sources.count))
            var metadata: [String: GGUFValue]
            if random.next() % 3 == 0 {
                let fields = Self.lengthFields(sourceBytes[k], end: min(sources[k].dataOffset, 4096))
                try FileFuzzing.write(Data(ByteMutator.mutate(sourceBytes[k], &random, fields: fields)), to: url)
                metadata = try GGUFFile(url: url).metadata
            } else {
                metadata = sources[k].metadata
                let keys = metadata.keys.filter { $0.hasPrefix("tokenizer.") }.sorted()
                for _ in 0..<(1 + Int(random.next() % 2)) {
                    let key = keys[Int(random.next() % UInt64(keys.count))]
                    metadata[key] = metadata[key].flatMap { Self.mutate($0, &random) }
                }
            }
            let tokenizer = try Tokenizer(ggufMetadata: metadata, fileName: "tokenizer.gguf")
            _ = try Tokenizer.chatTemplate(ggufMetadata: metadata, fileName: "tokenizer.gguf")
            for text in TokenizerFuzzTests.texts {
                let ids = tokenizer.encode(text)
                XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tokenizer.vocabularySize }, "ids \(ids) outside 0..<\(tokenizer.vocabularySize)")
                _ = tokenizer.decode(ids)
            }
        }
    }

    /// One metadata value changed; nil removes the key.
    static func mutate(_ value: GGUFValue, _ random: inout SplitMix64) -> GGUFValue? {
        let edges: [GGUFValue] = [.uint32(0), .uint32(.max), .int32(-1), .int64(.min), .uint64(.max), .int32(1 << 20),
                                  .float32(.nan), .float32(-.infinity), .bool(true), .string([]), .string([0xFF, 0xFE]),
                                  .string(Array("x".utf8)), .array(.uint32, []), .array(.string, [.string([])])]
        switch random.next() % 5 {
        case 0: return nil
        case 1: return edges[Int(random.next() % UInt64(edges.count))]
        default:
            guard case .array(let type, var items) = value, !items.isEmpty else { return edges[Int(random.next() % UInt64(edges.count))] }
            let i = Int(random.next() % UInt64(items.count))
            switch random.next() % 4 {
            case 0: items.removeLast(1 + Int(random.next() % UInt64(items.count)))
            case 1: items[i] = edges[Int(random.next() % UInt64(edges.count))]
            case 2: items.insert(items[i], at: Int(random.next() % UInt64(items.count)))
            default:
                if case .string(let bytes) = items[i] { items[i] = .string(ByteMutator.mutate(bytes, &random)) }
                else if let n = items[i].intValue { items[i] = .int32(Int32(truncatingIfNeeded: n &+ Int(random.next() % 3) &- 1)) }
            }
            return .array(type, items)
        }
    }
}
