import MemoryPlanner
import XCTest
@testable import Runtime

/// The golden PEFT adapter (Tests/Fixtures/golden/tiny_lora) on the tiny model, against PEFT's
/// logits and loss; merging against applying. Tolerances from the golden README: logits
/// max|d| ≤ 1e-5 · max(1, max|ref|), loss 1e-5.
final class LoRAGoldenTests: XCTestCase {
    static let adapterDirectory = Fixtures.golden.appendingPathComponent("tiny_lora")

    func loadGolden() throws -> (DecoderModel, LoRAAdapter) {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        return (model, try PEFTAdapterFile.load(directory: Self.adapterDirectory, model: model))
    }

    func testTheGoldenAdapterLoadsAsPEFTDescribesIt() throws {
        let (_, adapter) = try loadGolden()
        XCTAssertEqual(adapter.rank, 8)
        XCTAssertEqual(adapter.alpha, 16)
        XCTAssertEqual(adapter.scaling, 2)
        XCTAssertEqual(adapter.dropout, 0)
        XCTAssertEqual(adapter.targets, Set(LoRATarget.layerTargets))
        XCTAssertEqual(adapter.namedPairs.count, 14)
        XCTAssertEqual(adapter.parameterCount, 2 * 8 * ((64 + 64) * 2 + (32 + 64) * 2 + (176 + 64) * 3))
        let q = try XCTUnwrap(adapter.pair(.q, layer: 0))
        XCTAssertEqual([q.a.rows, q.a.cols, q.b.rows, q.b.cols], [8, 64, 64, 8])
        XCTAssertNotEqual(q.b.toArray().map(abs).max(), 0, "the golden B is N(0, 0.1), not zero")
    }

    func testLogitsWithTheAdapterMatchPEFT() throws {
        let (model, adapter) = try loadGolden()
        let ids = try GoldenForwardTests.inputIds()
        let golden = try Fixtures.npy("tiny_lora_logits.npy")
        XCTAssertEqual(golden.shape, [ids.count, 512])
        let tolerance = GoldenForwardTests.tolerance(golden.values)
        for chunkSize in [256, 7, 1] {
            let diff = maxAbsDifference(try allLogits(model, adapter: adapter, ids: ids, chunkSize: chunkSize), golden.values)
            XCTAssertLessThanOrEqual(diff, tolerance, "chunk \(chunkSize): max |d| = \(diff)")
        }
        // The adapter matters: without it the logits are the base model's.
        let base = try allLogits(model, adapter: nil, ids: ids)
        XCTAssertGreaterThan(maxAbsDifference(base, golden.values), 100 * tolerance)
        XCTAssertLessThanOrEqual(maxAbsDifference(base, try Fixtures.npy("tiny_logits.npy").values), tolerance)
    }

    func testIncrementalDecodingWithTheAdapter() throws {
        // The one-row (sgemv) path of the adapter, after a prefill.
        let (model, adapter) = try loadGolden()
        let ids = try GoldenForwardTests.inputIds()
        let golden = try Fixtures.npy("tiny_lora_logits.npy")
        let tolerance = GoldenForwardTests.tolerance(golden.values)
        let session = try InferenceSession(model: model, capacity: 64, adapter: adapter)
        var last = [Float](repeating: 0, count: 512)
        try last.withUnsafeMutableBufferPointer { try session.forward(Array(ids[..<20]), logits: .last($0.baseAddress!)) }
        XCTAssertLessThanOrEqual(maxAbsDifference(last, Array(golden.values[(19 * 512)..<(20 * 512)])), tolerance)
        for t in 20..<ids.count {
            try last.withUnsafeMutableBufferPointer { try session.forward([ids[t]], logits: .last($0.baseAddress!)) }
            XCTAssertLessThanOrEqual(maxAbsDifference(last, Array(golden.values[(t * 512)..<((t + 1) * 512)])), tolerance, "position \(t)")
        }
    }

    func testLossWithTheAdapterMatchesPEFT() throws {
        let (model, adapter) = try loadGolden()
        let ids = try GoldenForwardTests.inputIds()
        let expected = try XCTUnwrap((Fixtures.json("tiny_golden.json")["lora"] as? [String: Any])?["loss_before_step"] as? Double)
        XCTAssertEqual(expected, 6.479699, accuracy: 1e-6)
        let session = try InferenceSession(model: model, capacity: 64, adapter: adapter)
        let result = try Perplexity.evaluate(session, sequences: [Dataset.Example(ids: ids, labels: ids)])
        XCTAssertEqual(result.tokens, ids.count - 1)
        XCTAssertEqual(result.loss, expected, accuracy: 1e-5)
    }

    func testMergedLogitsEqualTheAppliedAdapter() throws {
        let (model, adapter) = try loadGolden()
        let ids = try GoldenForwardTests.inputIds()
        let before = model.layers.map { $0.q.toArray() }
        let merged = try model.merged(with: adapter)
        XCTAssertEqual(merged.parameterCount, model.parameterCount)
        XCTAssertEqual(merged.byteCount, model.mergedByteCount(with: adapter))
        let golden = try Fixtures.npy("tiny_lora_logits.npy")
        let applied = try allLogits(model, adapter: adapter, ids: ids)
        let diff = maxAbsDifference(try allLogits(merged, adapter: nil, ids: ids), applied)
        XCTAssertLessThanOrEqual(diff, GoldenForwardTests.tolerance(golden.values), "max |d| = \(diff)")
        // The original is untouched: its (memory-mapped) weights were only read.
        XCTAssertTrue(model.layers[0].q.isBorrowed)
        XCTAssertEqual(model.layers.map { $0.q.toArray() }, before)
        XCTAssertLessThanOrEqual(maxAbsDifference(try allLogits(model, adapter: nil, ids: ids), try Fixtures.npy("tiny_logits.npy").values),
                                 GoldenForwardTests.tolerance(golden.values))
        // Untargeted weights are shared, targeted ones are new.
        XCTAssertTrue(merged.embedding === model.embedding)
        XCTAssertTrue(merged.lmHead === model.lmHead)
        XCTAssertFalse(merged.layers[1].down === model.layers[1].down)
    }

    func testMergingKeepsTheBaseDTypeAndUntiesAnAdaptedTiedHead() throws {
        // A bf16, tied model with an adapter on q_proj and lm_head.
        let config = ModelConfig(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, kvHeadCount: 2,
                                 vocabSize: 64, tiedEmbeddings: true)
        let model = ModelMaker.randomModel(config: config, initialization: .init(seed: 3, std: 0.1), dtype: .bf16)
        XCTAssertEqual(model.embedding.dtype, .bf16)
        let adapter = LoRAAdapter.create(config: config, rank: 4, alpha: 8, targets: [.q, .lmHead], seed: 5, b: .normal(std: 0.2))
        let merged = try model.merged(with: adapter)
        XCTAssertEqual(merged.layers[0].q.dtype, .bf16)
        XCTAssertFalse(merged.config.tiedEmbeddings)
        XCTAssertFalse(merged.lmHead === merged.embedding)
        XCTAssertTrue(merged.embedding === model.embedding, "the embedding itself is not adapted")
        XCTAssertEqual(merged.byteCount, model.mergedByteCount(with: adapter))
        let ids = [1, 5, 9, 33, 2, 60, 7]
        let applied = try allLogits(model, adapter: adapter, ids: ids)
        let folded = try allLogits(merged, adapter: nil, ids: ids)
        // bf16 rounding of the merged weights: about 2^-8 relative.
        let scale = applied.map(abs).max()!
        XCTAssertLessThanOrEqual(maxAbsDifference(applied, folded), 0.02 * scale)
        XCTAssertGreaterThan(maxAbsDifference(applied, try allLogits(model, adapter: nil, ids: ids)), 0.05 * scale)
    }
}

/// Every position's logits of `model` (with `adapter`) for `ids`.
func allLogits(_ model: DecoderModel, adapter: LoRAAdapter?, ids: [Int], chunkSize: Int = 256) throws -> [Float] {
    let session = try InferenceSession(model: model, capacity: 64, chunkSize: chunkSize, adapter: adapter)
    var out = [Float](repeating: 0, count: ids.count * model.config.vocabSize)
    try out.withUnsafeMutableBufferPointer { try session.forward(ids, logits: .all($0.baseAddress!)) }
    return out
}
