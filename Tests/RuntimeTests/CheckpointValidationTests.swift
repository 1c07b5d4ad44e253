import Foundation
import XCTest
@testable import Runtime

/// Broken checkpoints: each is a FormatError naming the file and the problem, and nothing loads.
final class CheckpointValidationTests: XCTestCase {
    /// A copy of the golden tiny model to break.
    func copyOfTiny() throws -> URL {
        let directory = try temporaryDirectory()
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            try FileManager.default.copyItem(at: Fixtures.tinyModel.appendingPathComponent(name), to: directory.appendingPathComponent(name))
        }
        return directory
    }

    func expectFormatError(_ directory: URL, file: String, problem: String, line: UInt = #line) {
        XCTAssertThrowsError(try DecoderModel.load(directory: directory), line: line) { error in
            guard let format = error as? FormatError else { return XCTFail("not a FormatError: \(error)", line: line) }
            XCTAssertEqual(format.file, file, line: line)
            XCTAssertTrue(format.problem.contains(problem), "\(format.problem) should contain \(problem)", line: line)
        }
    }

    /// Rewrites model.safetensors with a new header and/or data.
    func rewrite(_ directory: URL, header: (inout [String: Any]) -> Void, data: ((inout Data) -> Void)? = nil) throws {
        let url = directory.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: url)
        let n = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var object = try JSONSerialization.jsonObject(with: bytes[8..<(8 + n)]) as! [String: Any]
        var body = bytes[(8 + n)...]
        header(&object)
        if let data { var d = Data(body); data(&d); body = d[...] }
        let newHeader = try JSONSerialization.data(withJSONObject: object)
        var length = UInt64(newHeader.count).littleEndian
        try (Data(bytes: &length, count: 8) + newHeader + body).write(to: url)
    }

    func testTheIntactCopyLoads() throws {
        XCTAssertNoThrow(try DecoderModel.load(directory: try copyOfTiny()))
    }

    func testTruncatedFile() throws {
        let directory = try copyOfTiny()
        let url = directory.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: url)
        try bytes.prefix(bytes.count - 1000).write(to: url)
        expectFormatError(directory, file: "model.safetensors", problem: "ends past the end of the data")
        try bytes.prefix(5).write(to: url)
        expectFormatError(directory, file: "model.safetensors", problem: "truncated")
    }

    func testHeaderLengthPastTheEnd() throws {
        let directory = try copyOfTiny()
        let url = directory.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: url)
        var huge = UInt64(bytes.count).littleEndian
        bytes.replaceSubrange(0..<8, with: Data(bytes: &huge, count: 8))
        try bytes.write(to: url)
        expectFormatError(directory, file: "model.safetensors", problem: "runs past the end of the file")
        var absurd = UInt64.max.littleEndian
        bytes.replaceSubrange(0..<8, with: Data(bytes: &absurd, count: 8))
        try bytes.write(to: url)
        expectFormatError(directory, file: "model.safetensors", problem: "exceeds the limit")
    }

    func testHeaderIsNotJSON() throws {
        let directory = try copyOfTiny()
        let url = directory.appendingPathComponent("model.safetensors")
        var length = UInt64(8).littleEndian
        try (Data(bytes: &length, count: 8) + Data("{nojson!".utf8)).write(to: url)
        expectFormatError(directory, file: "model.safetensors", problem: "not a valid JSON object")
    }

    func testRangeOutOfBounds() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in
            var entry = h["model.norm.weight"] as! [String: Any]
            entry["data_offsets"] = [10_000_000, 10_000_256]
            h["model.norm.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "model.norm.weight: byte range 10000000..<10000256 ends past the end")
    }

    func testOverlappingRanges() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in
            let other = h["model.layers.0.input_layernorm.weight"] as! [String: Any]
            var entry = h["model.norm.weight"] as! [String: Any]
            entry["data_offsets"] = other["data_offsets"]
            h["model.norm.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "overlap")
    }

    func testSizeDisagreesWithShape() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in
            var entry = h["model.norm.weight"] as! [String: Any]
            entry["shape"] = [65]
            h["model.norm.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "which needs 260")
    }

    func testMissingTensor() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in h["model.layers.1.mlp.up_proj.weight"] = nil })
        expectFormatError(directory, file: "model.safetensors", problem: "missing tensor model.layers.1.mlp.up_proj.weight")
    }

    func testWrongShape() throws {
        let directory = try copyOfTiny()
        // Swap two same-size tensors' shapes so sizes still agree but the shape is wrong.
        try rewrite(directory, header: { h in
            var entry = h["model.layers.0.self_attn.k_proj.weight"] as! [String: Any]
            entry["shape"] = [64, 32]
            h["model.layers.0.self_attn.k_proj.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "k_proj.weight has shape [64, 32], the config implies [32, 64]")
    }

    func testUnknownDType() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in
            var entry = h["model.norm.weight"] as! [String: Any]
            entry["dtype"] = "F33"
            h["model.norm.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "unknown dtype 'F33'")
    }

    func testNonWeightDTypeIsRefused() throws {
        let directory = try copyOfTiny()
        try rewrite(directory, header: { h in
            var entry = h["model.norm.weight"] as! [String: Any]
            entry["dtype"] = "I32"
            h["model.norm.weight"] = entry
        })
        expectFormatError(directory, file: "model.safetensors", problem: "is I32; weights must be F32, BF16 or F16")
    }

    func testConfigMissingAFieldOrUnsupported() throws {
        let directory = try copyOfTiny()
        let url = directory.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        config["num_hidden_layers"] = nil
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        expectFormatError(directory, file: "config.json", problem: "missing required field num_hidden_layers")
        config["num_hidden_layers"] = 2
        config["architectures"] = ["Phi3ForCausalLM"]
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        expectFormatError(directory, file: "config.json", problem: "architecture Phi3ForCausalLM is not supported; loramd runs LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM")
        config["architectures"] = ["LlamaForCausalLM"]
        config["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0]
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        expectFormatError(directory, file: "config.json", problem: "rope scaling type 'yarn' is not supported")
        try Data("[1,2]".utf8).write(to: url)
        expectFormatError(directory, file: "config.json", problem: "not a JSON object")
        try FileManager.default.removeItem(at: url)
        expectFormatError(directory, file: "config.json", problem: "missing")
    }

    func testNoWeightsFile() throws {
        let directory = try copyOfTiny()
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        expectFormatError(directory, file: "model.safetensors", problem: "no model.safetensors or model.safetensors.index.json")
    }

    // MARK: Sharded checkpoints

    /// Splits the tiny model into two shards with an index.
    func shardedTiny() throws -> URL {
        let directory = try copyOfTiny()
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        var first: [SafetensorsWriter.Entry] = [], second: [SafetensorsWriter.Entry] = []
        var map: [String: String] = [:]
        for (name, weight) in model.namedWeights() {
            let entry = SafetensorsWriter.Entry.floats(name, weight.toArray(), shape: [weight.rows, weight.cols])
            if name.contains("layers.1") || name.hasPrefix("lm_head") { second.append(entry); map[name] = "model-00002-of-00002.safetensors" }
            else { first.append(entry); map[name] = "model-00001-of-00002.safetensors" }
        }
        for (name, values) in model.namedNorms() {
            first.append(.floats(name, values, shape: [values.count]))
            map[name] = "model-00001-of-00002.safetensors"
        }
        try SafetensorsWriter().write(first, to: directory.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafetensorsWriter().write(second, to: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model.safetensors"))
        let index: [String: Any] = ["metadata": ["total_size": 0], "weight_map": map]
        try JSONSerialization.data(withJSONObject: index).write(to: directory.appendingPathComponent("model.safetensors.index.json"))
        return directory
    }

    func testShardedCheckpointGivesTheSameLogits() throws {
        let sharded = try DecoderModel.load(directory: try shardedTiny())
        let golden = try Fixtures.npy("tiny_logits.npy")
        let ids = try GoldenForwardTests.inputIds()
        var logits = [Float](repeating: 0, count: ids.count * 512)
        try logits.withUnsafeMutableBufferPointer { try InferenceSession(model: sharded, capacity: 64).forward(ids, logits: .all($0.baseAddress!)) }
        XCTAssertLessThanOrEqual(maxAbsDifference(logits, golden.values), 3e-5)
    }

    func testShardIndexNamingAMissingFile() throws {
        let directory = try shardedTiny()
        try FileManager.default.removeItem(at: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        expectFormatError(directory, file: "model.safetensors.index.json", problem: "names the shard model-00002-of-00002.safetensors, which does not exist")
    }

    func testShardIndexPlacingATensorInTheWrongShard() throws {
        let directory = try shardedTiny()
        let url = directory.appendingPathComponent("model.safetensors.index.json")
        var index = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var map = index["weight_map"] as! [String: String]
        map["lm_head.weight"] = "model-00001-of-00002.safetensors"
        index["weight_map"] = map
        try JSONSerialization.data(withJSONObject: index).write(to: url)
        expectFormatError(directory, file: "model-00001-of-00002.safetensors", problem: "places tensor lm_head.weight here")
    }

    func testShardNamesCannotLeaveTheDirectory() throws {
        let directory = try shardedTiny()
        let url = directory.appendingPathComponent("model.safetensors.index.json")
        try JSONSerialization.data(withJSONObject: ["weight_map": ["lm_head.weight": "../../etc/passwd"]]).write(to: url)
        expectFormatError(directory, file: "model.safetensors.index.json", problem: "is not a file name")
    }

    // MARK: Storage dtypes

    func testBF16AndF16CheckpointsAndStorage() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try GoldenForwardTests.inputIds()
        let golden = try Fixtures.npy("tiny_logits.npy")
        for dtype in [TensorDType.bf16, .f16] {
            // Saved in dtype, loaded as stored: the weights are rounded once, the math is fp32.
            let directory = try temporaryDirectory("save\(dtype.rawValue)")
            try model.save(to: directory, dtype: dtype)
            let reloaded = try DecoderModel.load(directory: directory)
            XCTAssertEqual(reloaded.embedding.dtype, dtype)
            XCTAssertEqual(reloaded.byteCount, model.byteCount / 2 + reloaded.namedNorms().reduce(0) { $0 + $1.values.count } * 2)
            var logits = [Float](repeating: 0, count: ids.count * 512)
            try logits.withUnsafeMutableBufferPointer { try InferenceSession(model: reloaded, capacity: 64).forward(ids, logits: .all($0.baseAddress!)) }
            let diff = maxAbsDifference(logits, golden.values)
            // bf16 keeps 8 bits of mantissa: the logits move by ~1e-2, not by 1.
            XCTAssertLessThan(diff, dtype == .bf16 ? 0.1 : 0.01, "\(dtype): \(diff)")
            XCTAssertGreaterThan(diff, 0, "\(dtype): rounding must show")
            // The same weights converted to f32 on load compute the same numbers as held in dtype.
            let widened = try DecoderModel.load(directory: directory, dtype: .f32)
            var widenedLogits = [Float](repeating: 0, count: ids.count * 512)
            try widenedLogits.withUnsafeMutableBufferPointer { try InferenceSession(model: widened, capacity: 64).forward(ids, logits: .all($0.baseAddress!)) }
            XCTAssertLessThanOrEqual(maxAbsDifference(logits, widenedLogits), 1e-5)
        }
    }

    func testBF16RoundingMatchesPyTorch() {
        // Round to nearest even on the 16 dropped bits.
        XCTAssertEqual(DTypeConversion.floatToBF16(1.0), 0x3F80)
        XCTAssertEqual(DTypeConversion.floatToBF16(Float(bitPattern: 0x3F80_8000)), 0x3F80, "tie to even (down)")
        XCTAssertEqual(DTypeConversion.floatToBF16(Float(bitPattern: 0x3F81_8000)), 0x3F82, "tie to even (up)")
        XCTAssertEqual(DTypeConversion.floatToBF16(Float(bitPattern: 0x3F80_8001)), 0x3F81)
        XCTAssertEqual(DTypeConversion.bf16ToFloat(0xC000), -2)
        XCTAssertTrue(DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16(.nan)).isNaN)
    }

    /// A config.json whose counts are past SizeLimits is a FormatError naming the field, before a
    /// list of layers or a plan is made for them (1e11 layers was an allocation abort).
    func testEnormousConfigCountsAreFormatErrors() throws {
        let directory = try copyOfTiny()
        let url = directory.appendingPathComponent("config.json")
        let good = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let rows: [(String, Any, String)] = [
            ("num_hidden_layers", 1e11, "num_hidden_layers is 100000000000, past loramd's limit of 4096"),
            ("num_hidden_layers", 5000, "num_hidden_layers is 5000"),
            ("hidden_size", 1 << 39, "hidden_size is 549755813888"),
            ("intermediate_size", 1e11, "intermediate_size"),
            ("vocab_size", 1e11, "vocab_size"),
            ("head_dim", 1 << 30, "head_dim"),
            ("max_position_embeddings", 1e11, "max_position_embeddings"),
            ("loram", ["layers": Array(repeating: ["num_attention_heads": 1 << 39, "num_key_value_heads": 1, "intermediate_size": 8], count: 2)],
             "num_attention_heads is 549755813888"),
        ]
        for (key, value, problem) in rows {
            var config = good
            config[key] = value
            if key == "num_hidden_layers" || key == "hidden_size" { config["head_dim"] = 16 }
            try JSONSerialization.data(withJSONObject: config).write(to: url)
            expectFormatError(directory, file: "config.json", problem: problem)
        }
    }
}
