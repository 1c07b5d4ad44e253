import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Gradients against PEFT (golden) and against finite differences.
final class TrainingGradientTests: XCTestCase {
    /// The golden adapter (r 8, alpha 16, all 7 projections), read tensor by tensor.
    static func goldenAdapter(config: ModelConfig) throws -> LoRAAdapter {
        let adapter = LoRAAdapter(config: config, rank: 8, alpha: 16, targets: Set(LoRATarget.layerTargets))
        let file = try SafetensorsFile(url: Fixtures.golden.appendingPathComponent("tiny_lora/adapter_model.safetensors"))
        for (path, pair) in adapter.namedPairs {
            for (suffix, weight) in [("lora_A", pair.a), ("lora_B", pair.b)] {
                let info = try XCTUnwrap(file.tensors["base_model.model.\(path).\(suffix).weight"])
                XCTAssertEqual(info.shape, [weight.rows, weight.cols])
                let bytes = file.bytes(of: info)
                DTypeConversion.toFloat32(bytes.baseAddress!, dtype: .f32, count: weight.elementCount, into: weight.float32!)
            }
        }
        return adapter
    }

    static func tensors(_ name: String) throws -> [String: [Float]] {
        let file = try SafetensorsFile(url: Fixtures.golden.appendingPathComponent(name))
        var out: [String: [Float]] = [:]
        for (key, info) in file.tensors {
            var values = [Float](repeating: 0, count: info.elementCount)
            values.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(file.bytes(of: info).baseAddress!, dtype: info.dtype, count: info.elementCount, into: $0.baseAddress!) }
            out[key] = values
        }
        return out
    }

    /// The golden LoRA step on the tiny model, no checkpointing, with the given activation and
    /// matmul dtypes: its gradients and summed loss.
    static func goldenStep(activations: Workload.ActivationDType = .f32, matmul: MatmulDType = .f32) throws -> (GradientBuffers, Double) {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let adapter = try goldenAdapter(config: model.config)
        let ids = try GoldenForwardTests.inputIds()
        let gradients = GradientBuffers(adapter: adapter)
        let step = try TrainingStep(weights: StepWeights(model: model, copy: false), adapter: adapter, gradients: gradients,
                                    microBatch: 1, seqLen: ids.count, checkpointing: false, activations: activations, matmul: matmul)
        return (gradients, step.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil).lossSum)
    }

    /// The largest |gradient - PEFT's| over every LoRA tensor of `gradients`, against `golden`
    /// (tiny_lora_grads.safetensors, PEFT's `.default.` names).
    static func worstGoldenDifference(_ gradients: GradientBuffers, _ golden: [String: [Float]]) throws -> Float {
        try gradients.entries.map { entry in
            let name = entry.name.replacingOccurrences(of: ".lora_A.weight", with: ".lora_A.default.weight")
                .replacingOccurrences(of: ".lora_B.weight", with: ".lora_B.default.weight")
            return maxAbsDifference(Array(UnsafeBufferPointer(start: entry.gradient, count: entry.count)), try XCTUnwrap(golden[name], name))
        }.max()!
    }

    func loraStep(checkpointing: Bool) throws -> (GradientBuffers, Double, Int) {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let adapter = try Self.goldenAdapter(config: model.config)
        let ids = try GoldenForwardTests.inputIds()
        let gradients = GradientBuffers(adapter: adapter)
        let step = try TrainingStep(weights: StepWeights(model: model, copy: false), adapter: adapter, gradients: gradients,
                                microBatch: 1, seqLen: ids.count, checkpointing: checkpointing)
        let (loss, tokens) = step.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil)
        return (gradients, loss, tokens)
    }

    func testLoRAGradientsMatchPEFT() throws {
        let (gradients, loss, tokens) = try loraStep(checkpointing: false)
        let meta = (try Fixtures.json("tiny_golden.json")["lora"] as! [String: Any])
        XCTAssertEqual(tokens, 34)
        XCTAssertEqual(loss / Double(tokens), meta["loss_before_step"] as! Double, accuracy: 1e-5)
        let golden = try Self.tensors("tiny_lora_grads.safetensors")
        XCTAssertEqual(golden.count, 28)
        let maxReference = golden.values.flatMap { $0 }.map(abs).max()!
        var worst: Float = 0
        for entry in gradients.entries {
            let name = entry.name.replacingOccurrences(of: ".lora_A.weight", with: ".lora_A.default.weight")
                .replacingOccurrences(of: ".lora_B.weight", with: ".lora_B.default.weight")
            let reference = try XCTUnwrap(golden[name], name)
            worst = max(worst, maxAbsDifference(Array(UnsafeBufferPointer(start: entry.gradient, count: entry.count)), reference))
        }
        // Golden README: max|d| <= 2e-5 · max|ref| over all gradient tensors.
        XCTAssertLessThanOrEqual(worst, 2e-5 * maxReference, "worst |d| = \(worst), bound \(2e-5 * maxReference)")
        print("LoRA gradients: worst |d| = \(worst) (bound \(2e-5 * maxReference))")
    }

    func testCheckpointingGivesTheSameGradients() throws {
        let (plain, lossPlain, _) = try loraStep(checkpointing: false)
        let (checkpointed, lossCheckpointed, _) = try loraStep(checkpointing: true)
        XCTAssertEqual(lossPlain, lossCheckpointed)
        for (a, b) in zip(plain.entries, checkpointed.entries) {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: a.gradient, count: a.count)),
                           Array(UnsafeBufferPointer(start: b.gradient, count: b.count)), a.name)
        }
    }
}

extension TrainingGradientTests {
    /// Full-parameter gradients (embeddings, norms, every linear, lm_head) against central
    /// differences of the loss, on 300 coordinates drawn across all tensors.
    func testFullParameterGradientsAgainstFiniteDifferences() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = Array(try GoldenForwardTests.inputIds().prefix(24))
        let weights = StepWeights(model: model, copy: true)
        let gradients = GradientBuffers(weights: weights, frozen: [])
        XCTAssertEqual(gradients.parameterCount, model.parameterCount)
        let step = try TrainingStep(weights: weights, adapter: nil, gradients: gradients, microBatch: 2, seqLen: 12, checkpointing: false)
        // Two rows of 12; the second row's first label is masked.
        var labels = ids
        labels[12] = Dataset.ignoreIndex
        labels[13] = Dataset.ignoreIndex
        let normalizer = 2 * 11 - 1
        _ = step.run(ids: ids, labels: labels, normalizer: normalizer, dropoutSeed: nil)
        func loss() -> Double { step.loss(ids: ids, labels: labels).lossSum / Double(normalizer) }
        var rng = Xoshiro256StarStar(seed: 42)
        var worst = 0.0, checked = 0
        let epsilon: Float = 1e-2
        for _ in 0..<300 {
            let entry = gradients.entries[Int(rng.next() % UInt64(gradients.entries.count))]
            let index = Int(rng.next() % UInt64(entry.count))
            let original = entry.parameter[index]
            entry.parameter[index] = original + epsilon
            let plus = loss()
            entry.parameter[index] = original - epsilon
            let minus = loss()
            entry.parameter[index] = original
            let numeric = (plus - minus) / (2 * Double(epsilon))
            let analytic = Double(entry.gradient[index])
            // fp32 forward: the loss carries ~1e-6 of rounding, so differences below ~1e-4 are noise.
            let error = abs(numeric - analytic) / max(1e-3, abs(numeric), abs(analytic))
            worst = max(worst, error)
            XCTAssertLessThan(error, 0.02, "\(entry.name)[\(index)]: numeric \(numeric), analytic \(analytic)")
            checked += 1
        }
        print("finite differences: \(checked) coordinates, worst relative error \(worst)")
    }
}

extension TrainingGradientTests {
    /// The step uses each buffer only within the lifetime its program gives it: in the placed
    /// program (buffers whose lifetimes do not meet share memory) and in the same program with
    /// nothing released (no sharing), both arenas poisoned with NaN first, the gradients are the
    /// same bit for bit, with and without checkpointing, LoRA with dropout and full-parameter, fp32
    /// and bf16 activations (the poison is NaN read either way).
    func testTheStepUsesEachBufferOnlyWithinItsPlannedLifetime() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = (0..<30).map { ($0 * 7 + 3) % model.config.vocabSize }
        for (checkpointing, activations) in [(false, Workload.ActivationDType.f32), (true, .f32), (false, .bf16)] {
            for rank: Int? in [nil, 4] {
                let targets: Set<LoRATarget> = [.q, .v, .down, .lmHead]
                let adapter = rank.map { LoRAAdapter(config: model.config, rank: $0, alpha: 8, dropout: 0.1, targets: targets) }
                adapter?.initialize(seed: 5, b: .normal(std: 0.05))
                let program = try TrainingStep.program(config: model.config, adapter: adapter, microBatch: 3, seqLen: 10,
                                                       checkpointing: checkpointing, activations: activations)
                func gradients(_ program: StepProgram) throws -> (peak: Int, values: [[Float]]) {
                    let weights = StepWeights(model: model, copy: adapter == nil)
                    let gradients = adapter.map(GradientBuffers.init(adapter:)) ?? GradientBuffers(weights: weights, frozen: ["lm_head"])
                    let arena = try PlannedBuffers(program)
                    let poison = Float(bitPattern: 0x7FC0_7FC0)
                    for buffer in program.buffers { arena.floats(buffer.name)!.update(repeating: poison, count: buffer.bytes / 4) }
                    let step = TrainingStep(weights: weights, adapter: adapter, gradients: gradients, microBatch: 3, seqLen: 10,
                                            checkpointing: checkpointing, activations: activations, arena: arena)
                    gradients.zero()
                    _ = step.run(ids: ids, labels: ids, normalizer: 27, dropoutSeed: 42)
                    return (arena.peakBytes, gradients.entries.map { Array(UnsafeBufferPointer(start: $0.gradient, count: $0.count)) })
                }
                var unshared = program
                for i in unshared.ops.indices { unshared.ops[i].releases = [] }
                let planned = try gradients(program), separate = try gradients(unshared)
                let name = "checkpointing \(checkpointing), \(activations) activations, rank \(String(describing: rank))"
                XCTAssertTrue(planned.values.joined().allSatisfy(\.isFinite), name)
                XCTAssertTrue(planned.values.joined().contains { $0 != 0 }, name)
                XCTAssertEqual(planned.values, separate.values, name)
                XCTAssertLessThan(planned.peak, separate.peak, "\(name): the plan shares memory")
            }
        }
    }
}
