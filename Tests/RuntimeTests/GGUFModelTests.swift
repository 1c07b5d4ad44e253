import MemoryPlanner
import XCTest
@testable import Runtime

/// LLaMA models through GGUF: written as llama.cpp's converter lays them out (names, Q/K rotary row
/// order, metadata) and read back to the same weights and the same logits.
final class GGUFModelTests: XCTestCase {
    func roundTrip(_ model: DecoderModel, type: GGUFTensorType = .f32, dtype: TensorDType = .f32) throws -> DecoderModel {
        let url = try temporaryDirectory().appendingPathComponent("model.gguf")
        try model.saveGGUF(to: url, type: type)
        let file = try GGUFFile(url: url)
        return try DecoderModel.load(gguf: file, config: try DecoderModel.config(gguf: file), dtype: dtype)
    }

    /// The golden tiny model (transformers' logits) through GGUF F32: the same logits within the
    /// golden tolerance, every weight bit-equal (so the Q/K row order is undone exactly).
    func testGoldenTinyThroughGGUFGivesTheGoldenLogits() throws {
        let original = try DecoderModel.load(directory: Fixtures.tinyModel)
        let loaded = try roundTrip(original)
        XCTAssertEqual(loaded.config.layers, original.config.layers)
        XCTAssertEqual(loaded.config.hiddenSize, original.config.hiddenSize)
        XCTAssertEqual(loaded.config.headDim, original.config.headDim)
        XCTAssertEqual(loaded.config.vocabSize, original.config.vocabSize)
        XCTAssertEqual(loaded.config.rmsNormEps, original.config.rmsNormEps)
        XCTAssertEqual(loaded.config.ropeTheta, original.config.ropeTheta)
        XCTAssertEqual(loaded.config.tiedEmbeddings, original.config.tiedEmbeddings)
        XCTAssertEqual(loaded.config.maxPositionEmbeddings, original.config.maxPositionEmbeddings)
        for ((name, a), (_, b)) in zip(original.namedWeights(), loaded.namedWeights()) {
            XCTAssertEqual(a.toArray(), b.toArray(), name)
        }
        for ((name, a), (_, b)) in zip(original.namedNorms(), loaded.namedNorms()) { XCTAssertEqual(a, b, name) }
        let golden = try Fixtures.npy("tiny_logits.npy").values
        let diff = maxAbsDifference(try allLogits(loaded, adapter: nil, ids: try GoldenForwardTests.inputIds()), golden)
        XCTAssertLessThanOrEqual(diff, GoldenForwardTests.tolerance(golden), "max |d| = \(diff)")
    }

    /// In the file, Q and K rows are in llama.cpp's interleaved order: GGUF row 2j + h of a head
    /// is Hugging Face row h·D/2 + j (convert_hf_to_gguf's permute).
    func testQAndKRowsAreStoredInLlamaCppOrder() throws {
        let original = try DecoderModel.load(directory: Fixtures.tinyModel)
        let url = try temporaryDirectory().appendingPathComponent("model.gguf")
        try original.saveGGUF(to: url, type: .f32)
        let file = try GGUFFile(url: url)
        let d = original.config.headDim, c = original.config.hiddenSize
        let hf = original.layers[1].k.toArray()
        let info = try XCTUnwrap(file.tensors["blk.1.attn_k.weight"])
        var stored = [Float](repeating: 0, count: info.elementCount)
        try stored.withUnsafeMutableBufferPointer { try file.dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
        for head in 0..<original.config.kvHeadCount {
            for j in 0..<(d / 2) {
                for half in 0..<2 {
                    let ggufRow = head * d + 2 * j + half, hfRow = head * d + half * (d / 2) + j
                    XCTAssertEqual(Array(stored[ggufRow * c..<(ggufRow + 1) * c]), Array(hf[hfRow * c..<(hfRow + 1) * c]))
                }
            }
        }
        XCTAssertEqual((0..<64).map { GGUFRotaryOrder.hfRow(ofGGUFRow: GGUFRotaryOrder.ggufRow(ofHFRow: $0, headDim: 16), headDim: 16) }, Array(0..<64))
        XCTAssertEqual(file.metadata["llama.attention.head_count_kv"]?.intValue, 2)
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, "llama")
    }

    /// Quantized linears read back as their dequantized blocks; a 16-bit storage dtype rounds them.
    func testQuantizedTypesLoadAsTheirDequantizedValues() throws {
        let original = PruningFixtures.gqaModel()
        for type in [GGUFTensorType.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .f16, .bf16] {
            let loaded = try roundTrip(original, type: type)
            for ((name, a), (_, b)) in zip(original.namedWeights(), loaded.namedWeights()) {
                let stored = a.cols % type.blockSize == 0 ? type : GGUFTensorType.f32
                let expected = a.toArray().withUnsafeBufferPointer { GGUFQuantization.quantize($0, as: stored) }
                let decoded = [Float](unsafeUninitializedCapacity: a.elementCount) { buffer, count in
                    expected.withUnsafeBytes { GGUFDequantization.dequantize(stored, from: $0.baseAddress!, count: a.elementCount, into: buffer.baseAddress!) }
                    count = a.elementCount
                }
                XCTAssertEqual(b.toArray(), decoded, "\(type.name) \(name)")
            }
            let bf16 = try roundTrip(original, type: type, dtype: .bf16)
            XCTAssertEqual(bf16.layers[0].q.dtype, .bf16)
            let reference = try allLogits(loaded, adapter: nil, ids: PruningFixtures.ids)
            let diff = maxAbsDifference(try allLogits(bf16, adapter: nil, ids: PruningFixtures.ids), reference)
            XCTAssertLessThanOrEqual(diff, 0.02 * (reference.map(abs).max() ?? 1), "\(type.name) as bf16")
        }
    }

    /// A pruned model's per-layer widths travel as per-layer arrays.
    func testPrunedModelKeepsItsPerLayerWidths() throws {
        let pruned = try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, layers: 1..<3, importance: .l2)
        let loaded = try roundTrip(pruned)
        XCTAssertEqual(loaded.config.layers, pruned.config.layers)
        XCTAssertNotEqual(Set(loaded.config.layers.map(\.intermediate)).count, 1)
        XCTAssertEqual(try allLogits(loaded, adapter: nil, ids: PruningFixtures.ids), try allLogits(pruned, adapter: nil, ids: PruningFixtures.ids))
    }

    /// LLaMA-3.1's rope scaling travels as rope_freqs (a divisor per frequency) and is recognised
    /// as the llama3 rule again; linear scaling travels as metadata.
    func testRopeScalingRoundTrips() throws {
        for scaling in [ModelConfig.RopeScaling.llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192),
                        .linear(factor: 4)] {
            var config = PruningFixtures.config(heads: 8, kvHeads: 4)
            config.ropeTheta = 500_000
            config.ropeScaling = scaling
            let model = ModelMaker.randomModel(config: config, initialization: .init(seed: 3, std: 0.1))
            let loaded = try roundTrip(model)
            XCTAssertEqual(loaded.config.ropeScaling, scaling)
            let ids = (0..<40).map { ($0 * 37) % config.vocabSize }
            XCTAssertEqual(try allLogits(loaded, adapter: nil, ids: ids), try allLogits(model, adapter: nil, ids: ids))
        }
    }

    /// Divisors that are not the llama3 rule are kept as they are.
    func testArbitraryRopeDivisorsAreKept() throws {
        var config = PruningFixtures.config(heads: 8, kvHeads: 4)
        let half = config.headDim / 2
        config.ropeScaling = .divisors((0..<half).map { 1 + Float($0) / 3 })
        let model = ModelMaker.randomModel(config: config, initialization: .init(seed: 4, std: 0.1))
        let loaded = try roundTrip(model)
        guard case .divisors(let divisors) = loaded.config.ropeScaling else { return XCTFail("\(String(describing: loaded.config.ropeScaling))") }
        XCTAssertEqual(divisors.count, half)
        let ids = (0..<20).map { ($0 * 11) % config.vocabSize }
        XCTAssertLessThanOrEqual(maxAbsDifference(try allLogits(loaded, adapter: nil, ids: ids), try allLogits(model, adapter: nil, ids: ids)), 1e-5)
        // And a saved config.json says so, and reads back.
        let back = try ModelConfig(json: try loaded.config.jsonData())
        XCTAssertEqual(back.ropeScaling, loaded.config.ropeScaling)
    }

    /// Widths the metadata claims but the tensors do not have are a FormatError naming the tensor,
    /// before anything is planned: absurd head or layer counts cannot reach the planner.
    func testMetadataWidthsMustMatchTheTensors() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.gguf")
        try PruningFixtures.gqaModel().saveGGUF(to: url, type: .f32)
        let file = try GGUFFile(url: url)
        let dims: (String) -> [Int]? = { file.tensors[$0]?.dimensions }
        XCTAssertNoThrow(try ModelConfig(ggufMetadata: file.metadata, dimensions: dims, fileName: "m.gguf"))
        // Within SizeLimits (past them is refused before the tensors are looked at).
        for (key, value, tensor) in [("llama.attention.head_count", GGUFValue.uint32(16_000), "blk.0.attn_q.weight"),
                                     ("llama.block_count", .uint32(4_000), "blk.5.attn_norm.weight"),
                                     ("llama.feed_forward_length", .uint32(4_000_000), "blk.0.ffn_gate.weight"),
                                     ("llama.attention.head_count_kv", .uint32(2), "blk.0.attn_k.weight")] {
            var metadata = file.metadata
            metadata[key] = value
            XCTAssertThrowsError(try ModelConfig(ggufMetadata: metadata, dimensions: dims, fileName: "m.gguf"), key) { error in
                XCTAssertTrue((error as? FormatError)?.problem.contains(tensor) == true, "\(key): \(error)")
            }
        }
    }

    /// Metadata widths past SizeLimits are a FormatError naming the key and the limit, before any
    /// list per layer or tensor check is made for them.
    func testMetadataWidthsPastTheSizeLimits() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.gguf")
        try PruningFixtures.gqaModel().saveGGUF(to: url, type: .f32)
        let file = try GGUFFile(url: url)
        let dims: (String) -> [Int]? = { file.tensors[$0]?.dimensions }
        for (key, value, limit) in [("llama.block_count", GGUFValue.uint64(1 << 40), SizeLimits.layers),
                                    ("llama.attention.head_count", .uint32(UInt32(SizeLimits.heads + 1)), SizeLimits.heads),
                                    ("llama.feed_forward_length", .uint64(1 << 62), SizeLimits.intermediate),
                                    ("llama.embedding_length", .uint64(1 << 50), SizeLimits.hidden),
                                    ("llama.context_length", .uint64(1 << 40), SizeLimits.positions)] {
            var metadata = file.metadata
            metadata[key] = value
            XCTAssertThrowsError(try ModelConfig(ggufMetadata: metadata, dimensions: dims, fileName: "m.gguf"), key) { error in
                XCTAssertTrue((error as? FormatError)?.problem.contains("\(key) is") == true, "\(key): \(error)")
                XCTAssertTrue((error as? FormatError)?.problem.contains("between 1 and \(limit)") == true, "\(key): \(error)")
            }
        }
    }

    /// What model/load charges before reading equals what the loaded weights hold, for each dtype.
    func testPlannedBytesEqualTheLoadedWeights() throws {
        let url = try temporaryDirectory().appendingPathComponent("model.gguf")
        try PruningFixtures.gqaModel().saveGGUF(to: url, type: .q8_0)
        let file = try GGUFFile(url: url)
        let config = try DecoderModel.config(gguf: file)
        for dtype in [TensorDType.f32, .bf16, .f16] {
            XCTAssertEqual(DecoderModel.plannedBytes(gguf: file, config: config, dtype: dtype),
                           try DecoderModel.load(gguf: file, config: config, dtype: dtype).byteCount, "\(dtype)")
        }
    }
}
