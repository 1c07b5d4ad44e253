import MemoryPlanner
import XCTest
@testable import Runtime

/// The planner's description of a training step and what the runtime's step allocates are the
/// same numbers: one description, two uses.
final class StepProgramConsistencyTests: XCTestCase {
    func testTrainingProgramMatchesTheStepsAllocation() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let config = model.config
        let shape = config.modelShape
        XCTAssertEqual(try shape.parameterCount, model.parameterCount)
        for rank: Int? in [nil, 4] {
            let targets: Set<LoRATarget> = [.q, .v, .down, .lmHead]
            let workload = Workload(kind: .train, microBatch: 3, seqLen: 10, lora: rank.map { Workload.LoRA(r: $0, targets: targets) })
            let program = try StepProgramBuilder.trainingStep(shape, workload)
            XCTAssertNoThrow(try program.validate())
            // The runtime's step runs in this very program: its ops carry the tasks it walks.
            XCTAssertEqual(program.transientOnly().ops.compactMap(\.task).count, program.ops.count)
            let adapter = rank.map { LoRAAdapter(config: config, rank: $0, alpha: 8, targets: targets) }
            let trainable = program.buffers.first { $0.name == "gradients" }!.bytes / 4
            XCTAssertEqual(trainable, adapter?.parameterCount ?? model.parameterCount)
            XCTAssertEqual(trainable, try rank.map { try shape.loraParameterCount(rank: $0, targets: targets) } ?? shape.parameterCount)
            // Checkpointing keeps less at once: its transient total is smaller.
            let checkpointed = try StepProgramBuilder.trainingStep(shape, Workload(kind: .train, microBatch: 3, seqLen: 10, lora: workload.lora, checkpointing: true))
            XCTAssertNoThrow(try checkpointed.validate())
        }
        let generation = try StepProgramBuilder.generation(shape, Workload(kind: .generate, seqLen: 20, newTokens: 12))
        XCTAssertNoThrow(try generation.validate())
        let cache = generation.buffers.first { $0.kind == .kvCache }!.bytes
        XCTAssertEqual(cache, KVCache.byteCount(kvHeads: config.layers.map(\.kvHeads), headDim: config.headDim,
                                                slots: shape.kvSlots(positions: 32, chunk: StepProgramBuilder.inferenceChunk)))
    }
}

extension StepProgramConsistencyTests {
    /// A generation inside its planned arena gives transformers' greedy tokens; the session uses
    /// every planned byte (PlannedBuffers checks) and nothing else.
    func testGenerationRunsInItsPlannedArena() throws {
        let model = try DecoderModel.load(directory: Fixtures.tinyModel)
        let golden = (try Fixtures.json("tiny_greedy_golden.json")["cases"] as! [[String: Any]])[0]
        let prompt = golden["prompt_ids"] as! [Int], expected = golden["generated_ids"] as! [Int]
        let capacity = prompt.count + expected.count
        for adapter in [nil, LoRAAdapter(config: model.config, rank: 4, alpha: 8, targets: [.q, .down, .lmHead])] {
            let program = try StepProgramBuilder.generation(model.config.modelShape, Workload(
                kind: .generate, seqLen: capacity, lora: adapter.map { Workload.LoRA(r: $0.rank, targets: $0.targets) }))
            let arena = try PlannedBuffers(program)
            let session = try InferenceSession(model: model, capacity: capacity, adapter: adapter, arena: arena)
            // Every buffer of the session lives through prefill and decode: the arena holds them
            // all at once, and no more than alignment besides.
            let used = arena.program.buffers.reduce(0) { $0 + $1.bytes }
            XCTAssertGreaterThanOrEqual(arena.peakBytes, used)
            XCTAssertLessThanOrEqual(arena.peakBytes, used + 64 * arena.program.buffers.count)
            var options = TextGenerator.Options(maxTokens: expected.count)
            options.eosTokenIds = []
            let output = try TextGenerator(session: session).generate(prompt: prompt, options: options, decoder: GenerationTests.IdSpeller())
            // A zero-B adapter changes nothing: the same greedy tokens with and without it.
            XCTAssertEqual(output.ids, expected, "adapter: \(adapter != nil)")
        }
    }
}

extension StepProgramConsistencyTests {
    /// `model/forward` with every row of logits, and perplexity's chunk of logits, run in the
    /// session's planned arena (logits rows included) and give what a session outside any arena
    /// gives, for fp32 weights used in place and bf16 weights widened through the planned scratch.
    func testAllRowLogitsAndPerplexityRunInThePlannedArena() throws {
        let ids = Array(try Fixtures.json("tiny_golden.json")["input_ids"] as! [Int])
        for dtype in [TensorDType.f32, .bf16] {
            let model = try DecoderModel.load(directory: Fixtures.tinyModel, dtype: dtype)
            XCTAssertEqual(model.baseDType, dtype == .f32 ? .f32 : .bf16)
            let vocab = model.config.vocabSize, chunk = 8
            func arena(rows: Int) throws -> PlannedBuffers {
                try PlannedBuffers(StepProgramBuilder.generation(model.config.modelShape, Workload(
                    kind: .generate, seqLen: ids.count, baseDType: model.baseDType, logitsRows: rows)))
            }
            // All rows: planned with one logits row per token, every byte used (PlannedBuffers checks).
            let planned = try InferenceSession(model: model, capacity: ids.count, logitsRows: ids.count, arena: try arena(rows: ids.count))
            try planned.forward(ids, logits: .all(planned.logits))
            var reference = [Float](repeating: 0, count: ids.count * vocab)
            try reference.withUnsafeMutableBufferPointer {
                try InferenceSession(model: model, capacity: ids.count).forward(ids, logits: .all($0.baseAddress!))
            }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: planned.logits, count: ids.count * vocab)), reference, "\(dtype)")

            // Perplexity: a chunk of rows in the arena.
            let sequence = Dataset.Example(ids: ids, labels: ids)
            let inArena = try InferenceSession(model: model, capacity: ids.count, chunkSize: InferenceSession.defaultChunkSize,
                                           logitsRows: InferenceSession.defaultChunkSize,
                                           arena: try PlannedBuffers(StepProgramBuilder.generation(model.config.modelShape, Workload(
                                               kind: .generate, seqLen: ids.count, baseDType: model.baseDType,
                                               logitsRows: InferenceSession.defaultChunkSize))))
            let a = try Perplexity.evaluate(inArena, sequences: [sequence])
            let b = try Perplexity.evaluate(try InferenceSession(model: model, capacity: ids.count, chunkSize: chunk), sequences: [sequence])
            XCTAssertEqual(a.tokens, ids.count - 1)
            XCTAssertEqual(a.loss, b.loss, accuracy: 1e-5 * b.loss, "\(dtype)")
        }
    }
}
