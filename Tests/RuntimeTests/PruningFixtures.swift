import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Small random models for the pruning and recovery tests: GQA (8 heads over 4 kv heads) and MHA
/// (8 and 8), 5 layers, so the default window [1, 4) leaves a whole layer at each end.
enum PruningFixtures {
    static func config(heads: Int, kvHeads: Int, layers: Int = 5) -> ModelConfig {
        ModelConfig(hiddenSize: 64, intermediateSize: 96, layerCount: layers, headCount: heads, kvHeadCount: kvHeads,
                    headDim: 8, vocabSize: 128, rmsNormEps: 1e-5)
    }

    static func gqaModel(seed: UInt64 = 1, dtype: TensorDType = .f32) -> DecoderModel {
        ModelMaker.randomModel(config: config(heads: 8, kvHeads: 4), initialization: .init(seed: seed, std: 0.1), dtype: dtype)
    }

    static func mhaModel(seed: UInt64 = 2) -> DecoderModel {
        ModelMaker.randomModel(config: config(heads: 8, kvHeads: 8), initialization: .init(seed: seed, std: 0.1))
    }

    static let ids = [1, 17, 5, 99, 42, 8, 63, 120, 3, 77, 31, 2, 56, 91]

    /// The tiny golden model of each family beside LLaMA (Tests/Fixtures/golden-<family>).
    static func familyModels() throws -> [(String, DecoderModel)] {
        try ["qwen2", "qwen2-tied", "qwen3", "gemma3", "mistral"].map { name in
            (name, try DecoderModel.load(directory: Fixtures.root.appendingPathComponent("golden-\(name)/model")))
        }
    }

    /// Every position's logits of `model` (with `adapter`) for `ids`.
    static func logits(_ model: DecoderModel, adapter: LoRAAdapter? = nil, ids: [Int] = ids) throws -> [Float] {
        let session = try InferenceSession(model: model, capacity: ids.count, adapter: adapter)
        var out = [Float](repeating: 0, count: ids.count * model.config.vocabSize)
        try out.withUnsafeMutableBufferPointer { try session.forward(ids, logits: .all($0.baseAddress!)) }
        return out
    }

    /// `model` with `target` of layer `layer` replaced by `transform` of its values ([rows, cols], row-major).
    static func replacing(_ model: DecoderModel, layer l: Int, _ target: LoRATarget,
                          _ transform: (_ values: inout [Float], _ rows: Int, _ cols: Int) -> Void) -> DecoderModel {
        var layers = model.layers
        let weight = layers[l].weight(target)
        var values = weight.toArray()
        transform(&values, weight.rows, weight.cols)
        let replaced = Weight(rows: weight.rows, cols: weight.cols, dtype: weight.dtype)
        values.withUnsafeBufferPointer { replaced.assign($0.baseAddress!) }
        switch target {
        case .q: layers[l].q = replaced
        case .k: layers[l].k = replaced
        case .v: layers[l].v = replaced
        case .o: layers[l].o = replaced
        case .gate: layers[l].gate = replaced
        case .up: layers[l].up = replaced
        case .down: layers[l].down = replaced
        case .lmHead: preconditionFailure()
        }
        return DecoderModel(config: model.config, embedding: model.embedding, layers: layers, finalNorm: model.finalNorm,
                          lmHead: model.config.tiedEmbeddings ? nil : model.lmHead, pruning: model.pruning)
    }

    /// Random token sequences for a calibration or training set.
    static func examples(count: Int, length: Int, vocab: Int = 128, seed: UInt64 = 3) -> [Dataset.Example] {
        var random = Xoshiro256StarStar(seed: seed)
        return (0..<count).map { _ in
            let ids = [1] + (0..<(length - 1)).map { _ in 3 + Int(random.next() % UInt64(vocab - 3)) }
            return Dataset.Example(ids: ids, labels: ids)
        }
    }

    /// ΔW = B·A of a pair, [out, in], by plain loops (small matrices only).
    static func delta(_ pair: LoRAPair) -> [Float] {
        let a = pair.a.toArray(), b = pair.b.toArray(), r = pair.a.rows, n = pair.b.rows, k = pair.a.cols
        var out = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { var s: Float = 0; for t in 0..<r { s += b[i * r + t] * a[t * k + j] }; out[i * k + j] = s } }
        return out
    }
}
