import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// The training loop: one AdamW step as PyTorch takes it, resume equivalence, and learning.
final class TrainingJobTests: XCTestCase {
    func testOneStepMatchesTorchAdamW() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let adapter = try TrainingGradientTests.goldenAdapter(config: model.config)
        let ids = try GoldenForwardTests.inputIds()
        var settings = TrainingJob.Settings(seqLen: ids.count, microBatch: 1, steps: 1, lr: 1e-2)
        settings.weightDecay = 0.01
        settings.maxGradNorm = nil
        let job = try TrainingJob(model: model, adapter: adapter, examples: [Dataset.Example(ids: ids, labels: ids)], settings: settings)
        let result = job.runStep()
        XCTAssertEqual(result.step, 1)
        XCTAssertEqual(result.lr, 1e-2)
        let meta = try Fixtures.json("tiny_golden.json")["lora"] as! [String: Any]
        XCTAssertEqual(result.loss, meta["loss_before_step"] as! Double, accuracy: 1e-5)
        let golden = try TrainingGradientTests.tensors("tiny_lora_after_adamw_step.safetensors")
        var worst: Float = 0
        for entry in job.gradients.entries {
            let name = entry.name.replacingOccurrences(of: ".lora_A.weight", with: ".lora_A.default.weight")
                .replacingOccurrences(of: ".lora_B.weight", with: ".lora_B.default.weight")
            worst = max(worst, maxAbsDifference(Array(UnsafeBufferPointer(start: entry.parameter, count: entry.count)), try XCTUnwrap(golden[name])))
        }
        XCTAssertLessThanOrEqual(worst, 5e-6, "golden README: 5e-6 absolute")
        print("AdamW step: worst |d| = \(worst)")
    }

    /// Twelve random token sequences of a small vocabulary range, some masked.
    func examples(count: Int = 12) -> [Dataset.Example] {
        var rng = Xoshiro256StarStar(seed: 9)
        return (0..<count).map { i in
            let length = 6 + Int(rng.next() % 14)
            let ids = [1] + (0..<length).map { _ in 3 + Int(rng.next() % 60) }
            var labels = ids
            if i % 3 == 0 { for t in 0..<3 { labels[t] = Dataset.ignoreIndex } }
            return Dataset.Example(ids: ids, labels: labels)
        }
    }

    func settings(steps: Int) -> TrainingJob.Settings {
        var s = TrainingJob.Settings(seqLen: 16, microBatch: 2, steps: steps, lr: 3e-3)
        s.gradAccum = 2
        s.schedule = .cosine
        s.warmupSteps = 2
        s.weightDecay = 0.01
        s.seed = 5
        return s
    }

    func adapterValues(_ job: TrainingJob) -> [[Float]] {
        job.gradients.entries.map { Array(UnsafeBufferPointer(start: $0.parameter, count: $0.count)) }
    }

    func testResumeContinuesBitForBit() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        func freshAdapter() -> LoRAAdapter {
            let adapter = LoRAAdapter(config: model.config, rank: 4, alpha: 8, dropout: 0.1, targets: [.q, .v, .gate, .down, .lmHead])
            var rng = Xoshiro256StarStar(seed: 1)
            for (_, pair) in adapter.namedPairs {
                for i in 0..<pair.a.elementCount { pair.a.float32![i] = Float(rng.nextUnitDouble() - 0.5) * 0.2 }
            }
            return adapter
        }
        let n = 7, k = 3
        let straight = try TrainingJob(model: model, adapter: freshAdapter(), examples: examples(), settings: settings(steps: n))
        var straightLosses: [Double] = []
        for _ in 0..<n { straightLosses.append(straight.runStep().loss) }

        let first = try TrainingJob(model: model, adapter: freshAdapter(), examples: examples(), settings: settings(steps: n))
        var losses: [Double] = []
        for _ in 0..<k { losses.append(first.runStep().loss) }
        let directory = try temporaryDirectory()
        try first.save(to: directory, modelPath: Fixtures.tinyModel.path, dataset: nil)
        let resumed = try TrainingJob.resume(from: directory, model: model, examples: examples())
        XCTAssertEqual(resumed.completedSteps, k)
        for _ in k..<n { losses.append(resumed.runStep().loss) }
        XCTAssertEqual(losses, straightLosses, "the same losses, exactly")
        XCTAssertEqual(adapterValues(resumed), adapterValues(straight), "the same adapter, bit for bit")
    }

    func testLossFallsOnARepeatedDataset() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let data = Array(examples(count: 4))
        // LoRA on every target (B starts at zero, as PEFT's init), and full-parameter with lm_head frozen.
        let adapter = LoRAAdapter(config: model.config, rank: 8, alpha: 16, targets: Set(LoRATarget.allCases))
        var rng = Xoshiro256StarStar(seed: 2)
        for (_, pair) in adapter.namedPairs {
            let bound = 1 / Float(pair.a.cols).squareRoot()
            for i in 0..<pair.a.elementCount { pair.a.float32![i] = Float(rng.nextUnitDouble() * 2 - 1) * bound }
        }
        var s = settings(steps: 30)
        s.lr = 1e-2
        s.schedule = .constant
        var full = s
        full.frozen = ["lm_head"]
        full.lr = 2e-3
        for (name, job) in [("lora", try TrainingJob(model: model, adapter: adapter, examples: data, settings: s)),
                            ("full", try TrainingJob(model: model, adapter: nil, examples: data, settings: full))] {
            let before = job.evaluate(data).loss
            var last = 0.0
            while !job.isFinished { last = job.runStep().loss }
            let after = job.evaluate(data).loss
            print("\(name): loss \(before) -> \(after) (last step \(last))")
            XCTAssertLessThan(after, before * 0.6, "\(name): \(before) -> \(after)")
        }
        // Full-parameter training never touched the frozen lm_head nor the loaded model.
        let reloaded = try DecoderModel.load(directory: Fixtures.tinyModel)
        XCTAssertEqual(model.layers[0].q.toArray(), reloaded.layers[0].q.toArray())
    }
}

extension TrainingJobTests {
    /// state.json written before `keepZeros` existed still resumes (as false); the round trip is exact.
    func testSettingsFromBeforeKeepZerosStillDecode() throws {
        var settings = TrainingJob.Settings(seqLen: 16, microBatch: 2, steps: 5, lr: 1e-3)
        settings.maxGradNorm = nil
        settings.keepZeros = true
        let data = try JSONEncoder().encode(settings)
        XCTAssertEqual(try JSONDecoder().decode(TrainingJob.Settings.self, from: data), settings)
        var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        object.removeValue(forKey: "keepZeros")
        let old = try JSONDecoder().decode(TrainingJob.Settings.self, from: try JSONSerialization.data(withJSONObject: object))
        XCTAssertFalse(old.keepZeros)
        XCTAssertNil(old.maxGradNorm)
        XCTAssertEqual(old.seqLen, 16)
    }
}
