import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Each family's tiny random model against transformers and PEFT (Tests/Fixtures/golden-<family>,
/// scripts/make-family-goldens.py): logits at every chunk size and decoding one token at a time,
/// hidden states after every layer, greedy ids, the PEFT adapter's logits, LoRA gradients (with
/// and without checkpointing), full-parameter gradients of every base tensor (biases and per-head
/// norms included) and one AdamW step. Tolerances are LLaMA's (Tests/Fixtures/golden-families.md).
struct FamilyGolden {
    /// The fixture folder's name and the family its `model/config.json` must resolve to.
    let folder: String
    let family: String

    var root: URL { Fixtures.root.appendingPathComponent(folder) }
    func meta() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("golden.json"))) as! [String: Any]
    }
    func ids() throws -> [Int] { try meta()["input_ids"] as! [Int] }
    func model() throws -> DecoderModel { try DecoderModel.load(directory: root.appendingPathComponent("model")) }
    func npy(_ name: String) throws -> (shape: [Int], values: [Float]) { try Fixtures.npy(at: root.appendingPathComponent(name)) }
    func tensors(_ name: String) throws -> [String: [Float]] {
        let file = try SafetensorsFile(url: root.appendingPathComponent(name))
        var out: [String: [Float]] = [:]
        for (key, info) in file.tensors {
            var values = [Float](repeating: 0, count: info.elementCount)
            values.withUnsafeMutableBufferPointer {
                DTypeConversion.toFloat32(file.bytes(of: info).baseAddress!, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!)
            }
            out[key] = values
        }
        return out
    }
    static func tolerance(_ reference: [Float]) -> Float { 1e-5 * max(1, reference.map(abs).max()!) }

    func logits(_ model: DecoderModel, _ ids: [Int], adapter: LoRAAdapter? = nil, chunkSize: Int = 256) throws -> [Float] {
        let session = try InferenceSession(model: model, capacity: 128, chunkSize: chunkSize, adapter: adapter)
        var out = [Float](repeating: 0, count: ids.count * model.config.vocabSize)
        try out.withUnsafeMutableBufferPointer { try session.forward(ids, logits: .all($0.baseAddress!)) }
        return out
    }

    func checkConfigResolvesToItsFamily() throws {
        XCTAssertEqual(try model().config.family.name, family)
    }

    func checkLogitsAtEveryChunkSizeAndDecoding() throws {
        let model = try model(), ids = try ids(), golden = try npy("logits.npy"), v = model.config.vocabSize
        XCTAssertEqual(golden.shape, [ids.count, v])
        for chunk in [256, 7, 1] {
            let diff = maxAbsDifference(try logits(model, ids, chunkSize: chunk), golden.values)
            XCTAssertLessThanOrEqual(diff, Self.tolerance(golden.values), "chunk \(chunk): max |d| = \(diff)")
        }
        // Prefill part of the prompt, then one token at a time (the decode path, the cache's window).
        let session = try InferenceSession(model: model, capacity: 128)
        var last = [Float](repeating: 0, count: v)
        try last.withUnsafeMutableBufferPointer { try session.forward(Array(ids[..<5]), logits: .last($0.baseAddress!)) }
        for t in 5..<ids.count {
            try last.withUnsafeMutableBufferPointer { try session.forward([ids[t]], logits: .last($0.baseAddress!)) }
            let reference = Array(golden.values[(t * v)..<((t + 1) * v)])
            XCTAssertLessThanOrEqual(maxAbsDifference(last, reference), Self.tolerance(reference), "position \(t)")
        }
        let argmax = (0..<ids.count).map { t in (0..<v).max { golden.values[t * v + $0] < golden.values[t * v + $1] }! }
        XCTAssertEqual(argmax, try meta()["argmax_per_position"] as! [Int])
    }

    func checkHiddenStatesAfterEveryLayer() throws {
        let model = try model(), ids = try ids(), golden = try npy("hidden_states.npy")
        let c = model.config.hiddenSize, layers = model.config.layerCount, n = ids.count * c
        XCTAssertEqual(golden.shape, [layers + 1, ids.count, c])
        var captured: [InferenceSession.HiddenState: [Float]] = [:]
        let session = try InferenceSession(model: model, capacity: 128)
        try session.forward(ids, observe: { state, pointer, rows, _ in
            captured[state, default: []] += Array(UnsafeBufferPointer(start: pointer, count: rows * c))
        })
        let states = [InferenceSession.HiddenState.embeddings] + (0..<(layers - 1)).map { .layer($0) } + [.finalNorm]
        for (index, state) in states.enumerated() {
            let reference = Array(golden.values[(index * n)..<((index + 1) * n)])
            let diff = maxAbsDifference(try XCTUnwrap(captured[state]), reference)
            XCTAssertLessThanOrEqual(diff, Self.tolerance(reference), "\(state): max |d| = \(diff)")
        }
    }

    func checkGreedyIds() throws {
        let model = try model(), ids = try ids(), v = model.config.vocabSize
        let session = try InferenceSession(model: model, capacity: 128)
        var last = [Float](repeating: 0, count: v)
        var generated: [Int] = []
        var next = ids
        for _ in 0..<16 {
            try last.withUnsafeMutableBufferPointer { try session.forward(next, logits: .last($0.baseAddress!)) }
            let id = (0..<v).max { last[$0] < last[$1] }!
            generated.append(id)
            next = [id]
        }
        XCTAssertEqual(generated, try meta()["greedy_16_new_ids"] as! [Int])
    }

    func checkPEFTAdapterLogits() throws {
        let model = try model(), golden = try npy("lora_logits.npy")
        let adapter = try PEFTAdapterFile.load(directory: root.appendingPathComponent("lora"), model: model)
        let diff = maxAbsDifference(try logits(model, try ids(), adapter: adapter), golden.values)
        XCTAssertLessThanOrEqual(diff, Self.tolerance(golden.values), "max |d| = \(diff)")
    }

    /// The largest |ours − reference| over `gradients`' entries, against the largest reference value.
    func worst(_ gradients: GradientBuffers, _ golden: [String: [Float]], name: (String) -> String) throws -> (Float, Float) {
        var worst: Float = 0, largest: Float = 0
        for entry in gradients.entries {
            let reference = try XCTUnwrap(golden[name(entry.name)], entry.name)
            worst = max(worst, maxAbsDifference(Array(UnsafeBufferPointer(start: entry.gradient, count: entry.count)), reference))
            largest = max(largest, reference.map(abs).max()!)
        }
        return (worst, largest)
    }

    func checkLoRAGradientsAndOneAdamWStep() throws {
        let model = try model(), ids = try ids()
        let meta = try meta()["lora"] as! [String: Any]
        let peftName = { (name: String) in
            name.replacingOccurrences(of: ".lora_A.weight", with: ".lora_A.default.weight")
                .replacingOccurrences(of: ".lora_B.weight", with: ".lora_B.default.weight")
        }
        let golden = try tensors("lora_grads.safetensors")
        for checkpointing in [false, true] {
            let adapter = try PEFTAdapterFile.load(directory: root.appendingPathComponent("lora"), model: model)
            let gradients = GradientBuffers(adapter: adapter)
            XCTAssertEqual(gradients.entries.count, golden.count)
            let step = try TrainingStep(weights: StepWeights(model: model, copy: false), adapter: adapter, gradients: gradients,
                                        microBatch: 1, seqLen: ids.count, checkpointing: checkpointing)
            let (loss, tokens) = step.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil)
            XCTAssertEqual(loss / Double(tokens), meta["loss_before_step"] as! Double, accuracy: 1e-5)
            let (diff, largest) = try worst(gradients, golden, name: peftName)
            XCTAssertLessThanOrEqual(diff, 2e-5 * largest, "checkpointing \(checkpointing): max |d| = \(diff)")
        }
        var settings = TrainingJob.Settings(seqLen: ids.count, microBatch: 1, steps: 1, lr: 1e-2)
        settings.weightDecay = 0.01
        settings.maxGradNorm = nil
        let adapter = try PEFTAdapterFile.load(directory: root.appendingPathComponent("lora"), model: model)
        let job = try TrainingJob(model: model, adapter: adapter, examples: [Dataset.Example(ids: ids, labels: ids)], settings: settings)
        _ = job.runStep()
        let after = try tensors("lora_after_adamw_step.safetensors")
        var worstStep: Float = 0
        for entry in job.gradients.entries {
            let value = Array(UnsafeBufferPointer(start: entry.parameter, count: entry.count))
            worstStep = max(worstStep, maxAbsDifference(value, try XCTUnwrap(after[peftName(entry.name)])))
        }
        XCTAssertLessThanOrEqual(worstStep, 5e-6, "A, B after one AdamW step")
    }

    /// model/save's folder and GGUF (F32) load back to the same config, weights and logits.
    func checkSavedFilesLoadBack(_ directory: URL) throws {
        let model = try model(), ids = try ids(), golden = try npy("logits.npy")
        try model.save(to: directory.appendingPathComponent("hf"))
        let fromFolder = try DecoderModel.load(directory: directory.appendingPathComponent("hf"))
        XCTAssertEqual(fromFolder.config, model.config)
        let url = directory.appendingPathComponent("model.gguf")
        try model.saveGGUF(to: url, type: .f32)
        let file = try GGUFFile(url: url)
        let fromGGUF = try DecoderModel.load(gguf: file, config: try DecoderModel.config(gguf: file), dtype: .f32)
        for config in [fromGGUF.config] {
            // GGUF has no mistral architecture: llama.cpp's converter writes Mistral as llama.
            XCTAssertEqual(config.family.layout, model.config.family.layout)
            XCTAssertEqual(config.family.ggufArchitecture, model.config.family.ggufArchitecture)
            XCTAssertEqual(config.layers, model.config.layers)
            XCTAssertEqual((0..<config.layerCount).map(config.window), (0..<config.layerCount).map(model.config.window))
            XCTAssertEqual(config.localRope, model.config.localRope)
            XCTAssertEqual(config.attentionScale, model.config.attentionScale)
            XCTAssertEqual(config.ropeScaling, model.config.ropeScaling)
        }
        for loaded in [fromFolder, fromGGUF] {
            for ((name, a), (_, b)) in zip(model.namedWeights(), loaded.namedWeights()) { XCTAssertEqual(a.toArray(), b.toArray(), name) }
            for ((name, a), (_, b)) in zip(model.namedNorms(), loaded.namedNorms()) { XCTAssertEqual(a, b, name) }
            let diff = maxAbsDifference(try logits(loaded, ids), golden.values)
            XCTAssertLessThanOrEqual(diff, Self.tolerance(golden.values), "max |d| = \(diff)")
        }
    }

    func checkFullParameterGradientsOfEveryBaseTensor() throws {
        let model = try model(), ids = try ids()
        let golden = try tensors("full_grads.safetensors")
        let weights = StepWeights(model: model, copy: true)
        let gradients = GradientBuffers(weights: weights, frozen: [])
        XCTAssertEqual(Set(gradients.entries.map(\.name)), Set(golden.keys), "one gradient per parameter transformers trains")
        let step = try TrainingStep(weights: weights, adapter: nil, gradients: gradients, microBatch: 1, seqLen: ids.count, checkpointing: false)
        _ = step.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil)
        let (diff, largest) = try worst(gradients, golden) { $0 }
        XCTAssertLessThanOrEqual(diff, 2e-5 * largest, "max |d| = \(diff) of max |ref| \(largest)")
    }
}

final class Qwen2GoldenTests: XCTestCase {
    let golden = FamilyGolden(folder: "golden-qwen2", family: "qwen2")
    func testConfigResolvesToItsFamily() throws { try golden.checkConfigResolvesToItsFamily() }
    func testLogitsAtEveryChunkSizeAndDecoding() throws { try golden.checkLogitsAtEveryChunkSizeAndDecoding() }
    func testHiddenStatesAfterEveryLayer() throws { try golden.checkHiddenStatesAfterEveryLayer() }
    func testGreedyIds() throws { try golden.checkGreedyIds() }
    func testPEFTAdapterLogits() throws { try golden.checkPEFTAdapterLogits() }
    func testLoRAGradientsAndOneAdamWStep() throws { try golden.checkLoRAGradientsAndOneAdamWStep() }
    func testFullParameterGradientsOfEveryBaseTensor() throws { try golden.checkFullParameterGradientsOfEveryBaseTensor() }
    func testSavedFilesLoadBack() throws { try golden.checkSavedFilesLoadBack(try temporaryDirectory()) }
}

final class Qwen2TiedGoldenTests: XCTestCase {
    let golden = FamilyGolden(folder: "golden-qwen2-tied", family: "qwen2")
    func testConfigResolvesToItsFamily() throws { try golden.checkConfigResolvesToItsFamily() }
    func testLogitsAtEveryChunkSizeAndDecoding() throws { try golden.checkLogitsAtEveryChunkSizeAndDecoding() }
    func testHiddenStatesAfterEveryLayer() throws { try golden.checkHiddenStatesAfterEveryLayer() }
    func testGreedyIds() throws { try golden.checkGreedyIds() }
    func testPEFTAdapterLogits() throws { try golden.checkPEFTAdapterLogits() }
    func testLoRAGradientsAndOneAdamWStep() throws { try golden.checkLoRAGradientsAndOneAdamWStep() }
    func testFullParameterGradientsOfEveryBaseTensor() throws { try golden.checkFullParameterGradientsOfEveryBaseTensor() }
    func testSavedFilesLoadBack() throws { try golden.checkSavedFilesLoadBack(try temporaryDirectory()) }
}

final class Qwen3GoldenTests: XCTestCase {
    let golden = FamilyGolden(folder: "golden-qwen3", family: "qwen3")
    func testConfigResolvesToItsFamily() throws { try golden.checkConfigResolvesToItsFamily() }
    func testLogitsAtEveryChunkSizeAndDecoding() throws { try golden.checkLogitsAtEveryChunkSizeAndDecoding() }
    func testHiddenStatesAfterEveryLayer() throws { try golden.checkHiddenStatesAfterEveryLayer() }
    func testGreedyIds() throws { try golden.checkGreedyIds() }
    func testPEFTAdapterLogits() throws { try golden.checkPEFTAdapterLogits() }
    func testLoRAGradientsAndOneAdamWStep() throws { try golden.checkLoRAGradientsAndOneAdamWStep() }
    func testFullParameterGradientsOfEveryBaseTensor() throws { try golden.checkFullParameterGradientsOfEveryBaseTensor() }
    func testSavedFilesLoadBack() throws { try golden.checkSavedFilesLoadBack(try temporaryDirectory()) }
}

final class MistralGoldenTests: XCTestCase {
    let golden = FamilyGolden(folder: "golden-mistral", family: "mistral")
    func testConfigResolvesToItsFamily() throws { try golden.checkConfigResolvesToItsFamily() }
    func testLogitsAtEveryChunkSizeAndDecoding() throws { try golden.checkLogitsAtEveryChunkSizeAndDecoding() }
    func testHiddenStatesAfterEveryLayer() throws { try golden.checkHiddenStatesAfterEveryLayer() }
    func testGreedyIds() throws { try golden.checkGreedyIds() }
    func testPEFTAdapterLogits() throws { try golden.checkPEFTAdapterLogits() }
    func testLoRAGradientsAndOneAdamWStep() throws { try golden.checkLoRAGradientsAndOneAdamWStep() }
    func testFullParameterGradientsOfEveryBaseTensor() throws { try golden.checkFullParameterGradientsOfEveryBaseTensor() }
    func testSavedFilesLoadBack() throws { try golden.checkSavedFilesLoadBack(try temporaryDirectory()) }
}

final class Gemma3GoldenTests: XCTestCase {
    let golden = FamilyGolden(folder: "golden-gemma3", family: "gemma3")

    /// The text model of a multimodal checkpoint (Gemma3ForConditionalGeneration, as Gemma 3
    /// 4B-27B ship): config.json's text_config, weights under `language_model.model.` (older
    /// transformers) or `model.language_model.` (newer), a vision tensor beside them.
    func testTheTextModelOfAMultimodalCheckpoint() throws {
        let source = golden.root.appendingPathComponent("model")
        let text = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        let expected = try golden.npy("logits.npy")
        for prefix in ["language_model.model.", "model.language_model."] {
            let folder = try temporaryDirectory()
            var textConfig = text
            textConfig["architectures"] = nil
            let config: [String: Any] = ["architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
                                         "text_config": textConfig, "vision_config": ["hidden_size": 8]]
            try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
            // The same tensor bytes under the multimodal names (a safetensors header is its length and JSON).
            let data = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
            let length = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
            var header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as! [String: Any]
            for key in header.keys where key.hasPrefix("model.") {
                header[prefix + key.dropFirst("model.".count)] = header.removeValue(forKey: key)
            }
            let json = try JSONSerialization.data(withJSONObject: header)
            var out = Data()
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
            out.append(json)
            out.append(data.subdata(in: (8 + length)..<data.count))
            try out.write(to: folder.appendingPathComponent("model.safetensors"))
            let model = try DecoderModel.load(directory: folder)
            XCTAssertEqual(model.config.family.name, "gemma3", prefix)
            let diff = maxAbsDifference(try golden.logits(model, try golden.ids()), expected.values)
            XCTAssertLessThanOrEqual(diff, FamilyGolden.tolerance(expected.values), "\(prefix): max |d| = \(diff)")
        }
    }
    func testConfigResolvesToItsFamily() throws { try golden.checkConfigResolvesToItsFamily() }
    func testLogitsAtEveryChunkSizeAndDecoding() throws { try golden.checkLogitsAtEveryChunkSizeAndDecoding() }
    func testHiddenStatesAfterEveryLayer() throws { try golden.checkHiddenStatesAfterEveryLayer() }
    func testGreedyIds() throws { try golden.checkGreedyIds() }
    func testPEFTAdapterLogits() throws { try golden.checkPEFTAdapterLogits() }
    func testLoRAGradientsAndOneAdamWStep() throws { try golden.checkLoRAGradientsAndOneAdamWStep() }
    func testFullParameterGradientsOfEveryBaseTensor() throws { try golden.checkFullParameterGradientsOfEveryBaseTensor() }
    func testSavedFilesLoadBack() throws { try golden.checkSavedFilesLoadBack(try temporaryDirectory()) }
}
