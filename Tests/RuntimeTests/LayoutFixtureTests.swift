import Foundation
import XCTest
@testable import Runtime

/// Checkpoints in layouts the golden model does not cover, saved by transformers itself with the
/// logits it computes (scripts/make-layout-fixtures.py): llama3 RoPE scaling with tied
/// embeddings and MHA; linear scaling with an explicit head_dim and GQA 4/1; bf16 weights in six
/// shards. Same tolerance as the golden logits.
final class LayoutFixtureTests: XCTestCase {
    static let root = Fixtures.root.appendingPathComponent("layouts")

    func check(_ name: String, dtype: TensorDType? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> DecoderModel {
        let directory = Self.root.appendingPathComponent(name)
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("reference.json"))) as! [String: Any]
        let ids = reference["ids"] as! [Int]
        let expected = (reference["logits"] as! [[Double]]).flatMap { $0.map(Float.init) }
        let model = try DecoderModel.load(directory: directory, dtype: dtype)
        let vocab = model.config.vocabSize
        for chunk in [256, 5] {
            var logits = [Float](repeating: 0, count: ids.count * vocab)
            try logits.withUnsafeMutableBufferPointer {
                try InferenceSession(model: model, capacity: ids.count, chunkSize: chunk).forward(ids, logits: .all($0.baseAddress!))
            }
            let tolerance = 1e-5 * max(1, expected.map(abs).max()!)
            let diff = maxAbsDifference(logits, expected)
            XCTAssertLessThanOrEqual(diff, tolerance, "\(name) chunk \(chunk): max |d| = \(diff)", file: file, line: line)
        }
        return model
    }

    func testLlama3RopeScalingTiedEmbeddingsMHA() throws {
        let model = try check("llama3-rope-tied-mha")
        XCTAssertTrue(model.config.tiedEmbeddings)
        XCTAssertTrue(model.lmHead === model.embedding)
        XCTAssertEqual(model.config.eosTokenIds, [2, 3])
        XCTAssertEqual(model.config.kvHeadCount, model.config.headCount)
        guard case .llama3(let factor, _, _, let original)? = model.config.ropeScaling else { return XCTFail("\(String(describing: model.config.ropeScaling))") }
        XCTAssertEqual(factor, 8)
        XCTAssertEqual(original, 16)
        XCTAssertEqual(model.config.ropeTheta, 500000)
    }

    func testLinearRopeScalingExplicitHeadDim() throws {
        let model = try check("linear-rope-headdim")
        XCTAssertEqual(model.config.headDim, 24)
        XCTAssertEqual(model.config.kvHeadCount, 1)
        XCTAssertEqual(model.config.ropeScaling, .linear(factor: 4))
    }

    func testBF16Shards() throws {
        let model = try check("bf16-sharded")
        XCTAssertEqual(model.embedding.dtype, .bf16, "kept as stored")
        _ = try check("bf16-sharded", dtype: .f32)
    }
}
