import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// A real training step inside its planned arena: the same numbers as with separate buffers, in
/// less memory, with next to nothing allocated outside the arena while it runs.
final class TrainingArenaTests: XCTestCase {
    func testTheStepRunsInItsPlannedArena() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let ids = try GoldenForwardTests.inputIds()
        let examples = [Dataset.Example(ids: ids, labels: ids)]
        var settings = TrainingJob.Settings(seqLen: ids.count, microBatch: 1, steps: 3, lr: 1e-2)
        settings.maxGradNorm = nil
        func job(checkpointing: Bool) throws -> TrainingJob {
            var s = settings
            s.checkpointing = checkpointing
            return try TrainingJob(model: model, adapter: try TrainingGradientTests.goldenAdapter(config: model.config), examples: examples, settings: s)
        }
        let planned = try job(checkpointing: false)
        let arena = planned.step.arena
        // Even without checkpointing the backward's buffers reuse what the forward kept for layers
        // already through their backward: the arena is smaller than the buffers together.
        let separateBytes = arena.program.buffers.reduce(0) { $0 + $1.bytes }
        XCTAssertLessThan(arena.peakBytes, separateBytes)
        XCTAssertEqual(arena.peakBytes, arena.placement.lowerBound)
        // The arena's region is jemalloc's and holds exactly the planned peak (rounded to jemalloc's size class).
        XCTAssertGreaterThanOrEqual(arena.arena.usableSize, arena.peakBytes)

        // Same gradients, bit for bit, as a step with separate buffers; and with checkpointing in its
        // own (smaller) arena, where each layer's recomputed activations share memory.
        let checkpointed = try job(checkpointing: true)
        let checkpointArena = checkpointed.step.arena
        XCTAssertLessThan(checkpointArena.peakBytes, arena.peakBytes, "checkpointing needs less")
        let adapter = try TrainingGradientTests.goldenAdapter(config: model.config)
        let gradients = GradientBuffers(adapter: adapter)
        // Separate buffers: the same program with nothing released, so no two buffers share memory.
        var unshared = try TrainingStep.program(config: model.config, adapter: adapter, microBatch: 1, seqLen: ids.count, checkpointing: false)
        for i in unshared.ops.indices { unshared.ops[i].releases = [] }
        let separate = TrainingStep(weights: StepWeights(model: model, copy: false), adapter: adapter, gradients: gradients,
                                    microBatch: 1, seqLen: ids.count, checkpointing: false, arena: try PlannedBuffers(unshared))
        // (Best fit packs this artificial program within 0.6% of its lower bound, not exactly.)
        XCTAssertLessThanOrEqual(separate.arena.placement.ratio, 1.01)
        for job in [planned, checkpointed] {
            job.gradients.zero()
            let inArena = job.step.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil)
            gradients.zero()
            let outside = separate.run(ids: ids, labels: ids, normalizer: ids.count - 1, dropoutSeed: nil)
            XCTAssertEqual(inArena.lossSum, outside.lossSum)
            for (x, y) in zip(job.gradients.entries, gradients.entries) {
                XCTAssertEqual(Array(UnsafeBufferPointer(start: x.gradient, count: x.count)), Array(UnsafeBufferPointer(start: y.gradient, count: y.count)), x.name)
            }
        }
        print("checkpointed arena peak \(checkpointArena.peakBytes) bytes, lower bound \(checkpointArena.placement.lowerBound)")

        // What the step allocates outside the arena, on its own thread. With one compute thread:
        // OpenBLAS's threaded driver mallocs ~512 KB per multi-threaded call (freed on return),
        // which is OpenBLAS's, not the step's.
        BLAS.setThreads(1)
        defer { BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount) }
        try Self.skipWhereOpenBLASAllocatesPerCall()
        let before = try XCTUnwrap(Jemalloc.threadAllocatedBytes)
        _ = planned.runStep()
        let outside = Int(try XCTUnwrap(Jemalloc.threadAllocatedBytes) - before)
        print("arena peak \(arena.peakBytes) bytes (separate buffers \(separateBytes)); allocated outside during a step: \(outside) bytes")
        XCTAssertLessThan(Double(outside), 0.01 * Double(arena.peakBytes), "under 1% of the arena")
    }
}

extension TrainingArenaTests {
    /// The check on both model sizes: a LoRA training step and a generation each run in
    /// their planned arena, whose region is the planned peak, with under 1% of it allocated
    /// outside the arena while they run (one compute thread, so OpenBLAS's threaded driver, which
    /// mallocs its own per-call buffers, is not counted as ours).
    func testTrainingAndGenerationOnTinyAndSmallStayInTheirArenas() throws {
        BLAS.setThreads(1)
        defer { BLAS.setThreads(ProcessInfo.processInfo.activeProcessorCount) }
        try Self.skipWhereOpenBLASAllocatesPerCall()
        let tiny = try DecoderModel.load(directory: Fixtures.tinyModel)
        let small = ModelMaker.randomModel(config: ModelMaker.Preset.small.config)
        for (name, model) in [("tiny", tiny), ("small", small)] {
            let seqLen = 64
            let ids = (0..<seqLen).map { ($0 * 37 + 11) % model.config.vocabSize }
            let adapter = LoRAAdapter(config: model.config, rank: 8, alpha: 16, targets: Set(LoRATarget.layerTargets))
            var settings = TrainingJob.Settings(seqLen: seqLen, microBatch: 2, steps: 2, lr: 1e-3)
            settings.checkpointing = true
            let job = try TrainingJob(model: model, adapter: adapter, examples: [Dataset.Example(ids: ids, labels: ids)], settings: settings)
            let arena = job.step.arena
            XCTAssertGreaterThanOrEqual(arena.arena.usableSize, arena.peakBytes)
            _ = job.runStep()  // first step: lazily made tables (RoPE, dropout) settle
            let before = try XCTUnwrap(Jemalloc.threadAllocatedBytes)
            _ = job.runStep()
            let trainOutside = Int(try XCTUnwrap(Jemalloc.threadAllocatedBytes) - before)
            XCTAssertLessThan(Double(trainOutside), 0.01 * Double(arena.peakBytes), "\(name) training: \(trainOutside) bytes outside")

            let capacity = 48
            let planned = try PlannedBuffers(StepProgramBuilder.generation(model.config.modelShape, Workload(
                kind: .generate, seqLen: capacity, baseDType: model.baseDType)))
            let session = try InferenceSession(model: model, capacity: capacity, arena: planned)
            let generator = TextGenerator(session: session)
            var options = TextGenerator.Options(maxTokens: 32)
            options.eosTokenIds = []
            _ = try generator.generate(prompt: Array(ids.prefix(16)), options: options, decoder: GenerationTests.IdSpeller())
            let start = try XCTUnwrap(Jemalloc.threadAllocatedBytes)
            let output = try generator.generate(prompt: Array(ids.prefix(16)), options: options, decoder: GenerationTests.IdSpeller())
            let generateOutside = Int(try XCTUnwrap(Jemalloc.threadAllocatedBytes) - start)
            XCTAssertEqual(output.ids.count, 32)
            // The output's own arrays (ids, text) are the caller's, a few hundred bytes.
            XCTAssertLessThan(Double(generateOutside), 0.01 * Double(planned.peakBytes), "\(name) generation: \(generateOutside) bytes outside")
            print("\(name): training arena \(arena.peakBytes) B, \(trainOutside) B outside; generation arena \(planned.peakBytes) B, \(generateOutside) B outside")
        }
    }
}

extension TrainingArenaTests {
    /// The thread's allocation counter cannot tell the step's mallocs from OpenBLAS's. A
    /// single-threaded cblas_sgemm mallocs ~100 bytes per call on every core type, which these
    /// bounds allow for; on OpenBLAS 0.3.21's AVX-512 cores (SkylakeX, Cooperlake, SapphireRapids)
    /// some shapes malloc far more inside the call (a uprobe on malloc shows cblas_sgemm+0x405;
    /// 0.58 MB a step on `small`), so there the bounds say nothing about the step and are skipped.
    static func skipWhereOpenBLASAllocatesPerCall() throws {
        let config = BLAS.configuration
        if ["SkylakeX", "Cooperlake", "SapphireRapids"].contains(where: config.contains) {
            throw XCTSkip("OpenBLAS (\(config)) allocates inside its calls on this CPU: allocations outside the arena cannot be attributed")
        }
    }
}
