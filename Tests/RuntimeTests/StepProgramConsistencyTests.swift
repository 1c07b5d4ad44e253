import XCTest
@testable import Runtime

/// The planner's description of a training step and what the runtime's step allocates are the
/// same numbers: one description, two uses.
final class StepProgramConsistencyTests: XCTestCase {
    func testTrainingProgramMatchesTheStepsAllocation() throws {
        let model = try LlamaModel.load(directory: Fixtures.tinyModel)
        let config = model.config
        let shape = config.modelShape
        XCTAssertEqual(shape.parameterCount, model.parameterCount)
        for rank: Int? in [nil, 4] {
            let targets: Set<LoRATarget> = [.q, .v, .down, .lmHead]
            let workload = Workload(kind: .train, microBatch: 3, seqLen: 10, lora: rank.map { Workload.LoRA(r: $0, targets: targets) })
            let program = StepProgramBuilder.trainingStep(shape, workload)
            XCTAssertNoThrow(try program.validate())
            let transient = program.buffers.filter { !$0.persistent }.reduce(0) { $0 + $1.bytes }
            let layout = TrainingStep.Layout(config: config, rank: rank, targets: targets, microBatch: 3, seqLen: 10, checkpointing: false)
            XCTAssertEqual(transient, layout.byteCount, "rank \(String(describing: rank))")
            let adapter = rank.map { LoRAAdapter(config: config, rank: $0, alpha: 8, targets: targets) }
            let trainable = program.buffers.first { $0.name == "gradients" }!.bytes / 4
            XCTAssertEqual(trainable, adapter?.parameterCount ?? model.parameterCount)
            XCTAssertEqual(trainable, rank.map { shape.loraParameterCount(rank: $0, targets: targets) } ?? shape.parameterCount)
            // Checkpointing keeps less at once: its transient total is smaller.
            let checkpointed = StepProgramBuilder.trainingStep(shape, Workload(kind: .train, microBatch: 3, seqLen: 10, lora: workload.lora, checkpointing: true))
            XCTAssertNoThrow(try checkpointed.validate())
        }
        let generation = StepProgramBuilder.generation(shape, Workload(kind: .generate, seqLen: 20, newTokens: 12))
        XCTAssertNoThrow(try generation.validate())
        let cache = generation.buffers.first { $0.kind == .kvCache }!.bytes
        XCTAssertEqual(cache, KVCache.byteCount(kvHeads: config.layers.map(\.kvHeadCount), headDim: config.headDim, capacity: 32))
    }
}
