import XCTest
@testable import Runtime

/// The tiny model's forward pass against transformers' fp32 outputs (Tests/Fixtures/golden).
/// Tolerance, from the golden README: max|d| ≤ 1e-5 · max(1, max|ref|).
final class GoldenForwardTests: XCTestCase {
    static func inputIds() throws -> [Int] {
        try (Fixtures.json("tiny_golden.json")["input_ids"] as! [Int])
    }

    static func tolerance(_ reference: [Float]) -> Float {
        1e-5 * max(1, reference.map(abs).max()!)
    }

    func testLogitsOfEveryPosition() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try Self.inputIds()
        let golden = try Fixtures.npy("tiny_logits.npy")
        XCTAssertEqual(golden.shape, [ids.count, 512])
        for chunkSize in [256, 7, 1] {
            let session = try InferenceSession(model: model, capacity: 64, chunkSize: chunkSize)
            var logits = [Float](repeating: 0, count: ids.count * 512)
            try logits.withUnsafeMutableBufferPointer { try session.forward(ids, logits: .all($0.baseAddress!)) }
            let diff = maxAbsDifference(logits, golden.values)
            XCTAssertLessThanOrEqual(diff, Self.tolerance(golden.values), "chunk \(chunkSize): max |d| = \(diff)")
        }
    }

    func testHiddenStates() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try Self.inputIds()
        let golden = try Fixtures.npy("tiny_hidden_states.npy")
        XCTAssertEqual(golden.shape, [3, ids.count, 64])
        var captured: [InferenceSession.HiddenState: [Float]] = [:]
        let session = try InferenceSession(model: model, capacity: 64)
        try session.forward(ids, observe: { state, pointer, rows, _ in
            captured[state, default: []] += Array(UnsafeBufferPointer(start: pointer, count: rows * 64))
        })
        let n = ids.count * 64
        for (index, state) in [InferenceSession.HiddenState.embeddings, .layer(0), .finalNorm].enumerated() {
            let reference = Array(golden.values[(index * n)..<((index + 1) * n)])
            let diff = maxAbsDifference(try XCTUnwrap(captured[state]), reference)
            XCTAssertLessThanOrEqual(diff, Self.tolerance(reference), "\(state): max |d| = \(diff)")
        }
    }

    func testIncrementalDecodingMatchesTheFullForward() throws {
        // Prefill part of the prompt, then one token at a time (the sgemv path): same logits.
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try Self.inputIds()
        let golden = try Fixtures.npy("tiny_logits.npy")
        let session = try InferenceSession(model: model, capacity: 64)
        var last = [Float](repeating: 0, count: 512)
        try last.withUnsafeMutableBufferPointer { try session.forward(Array(ids[..<20]), logits: .last($0.baseAddress!)) }
        XCTAssertLessThanOrEqual(maxAbsDifference(last, Array(golden.values[(19 * 512)..<(20 * 512)])), 3e-5)
        for t in 20..<ids.count {
            try last.withUnsafeMutableBufferPointer { try session.forward([ids[t]], logits: .last($0.baseAddress!)) }
            let diff = maxAbsDifference(last, Array(golden.values[(t * 512)..<((t + 1) * 512)]))
            XCTAssertLessThanOrEqual(diff, 3e-5, "position \(t)")
        }
    }

    func testBadTokensAndAFullCacheAreErrors() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let session = try InferenceSession(model: model, capacity: 4)
        XCTAssertThrowsError(try session.forward([1, 512])) { error in
            XCTAssertEqual(error as? InferenceSession.Failure, .tokenOutOfRange(index: 1, id: 512, vocabSize: 512))
        }
        XCTAssertThrowsError(try session.forward([1, 2, 3, 4, 5])) { error in
            XCTAssertEqual(error as? InferenceSession.Failure, .contextFull(capacity: 4, needed: 5))
        }
        XCTAssertEqual(session.length, 0, "a refused forward changes nothing")
    }
}

extension GoldenForwardTests {
    /// The golden README's loss for the base model is not given, but the LoRA one is; the base
    /// loss is recomputed here from the golden logits in double and must match ours.
    func testPerplexityAgreesWithTheGoldenLogits() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try Self.inputIds()
        let golden = try Fixtures.npy("tiny_logits.npy")
        var expected = 0.0
        for t in 0..<(ids.count - 1) {
            let row = Array(golden.values[(t * 512)..<((t + 1) * 512)])
            expected += row.withUnsafeBufferPointer { Perplexity.crossEntropy($0.baseAddress!, count: 512, label: ids[t + 1]) }
        }
        expected /= Double(ids.count - 1)
        for chunk in [256, 5] {
            let result = try Perplexity.evaluate(try InferenceSession(model: model, capacity: 64, chunkSize: chunk),
                                                 sequences: [Dataset.Example(ids: ids, labels: ids)])
            XCTAssertEqual(result.tokens, ids.count - 1)
            XCTAssertEqual(result.loss, expected, accuracy: 1e-5)
        }
        // Masked labels do not count.
        var labels = ids
        for t in 0..<10 { labels[t] = Dataset.ignoreIndex }
        let masked = try Perplexity.evaluate(try InferenceSession(model: model, capacity: 64), sequences: [Dataset.Example(ids: ids, labels: labels)])
        XCTAssertEqual(masked.tokens, ids.count - 10)
    }
}
