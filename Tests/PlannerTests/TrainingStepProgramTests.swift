import XCTest
@testable import MemoryPlanner

/// The training step's program is fine-grained: per layer and per block, each buffer made by one
/// op and dropped as soon as nothing later reads it, so the placement reuses memory the coarse
/// per-layer blobs of 0.6 could not.
final class TrainingStepProgramTests: XCTestCase {
    /// `loramd make-model --preset small`: 8 layers, hidden 512, GQA 8/4, MLP 1408, vocab 4096.
    static let small = ModelShape(hidden: 512, headDim: 64, vocab: 4096, tiedEmbeddings: false,
                                  layers: Array(repeating: .init(heads: 8, kvHeads: 4, intermediate: 1408), count: 8))

    func workload(checkpointing: Bool) -> Workload {
        Workload(kind: .train, microBatch: 4, seqLen: 256, lora: .init(r: 8, targets: LoRATarget.decoder), baseDType: .f32,
                 checkpointing: checkpointing)
    }

    /// The planned peak of a LoRA step (r 8, seven projections, 4 x 256) on the small model, against
    /// what the coarse program of loramd 0.6 planned for the same step (`loramd plan --config … --train
    /// --seq 256 --micro-batch 4 --lora-r 8 --base f32 [--checkpointing]` at 0.6.0).
    func testThePlannedPeakFallsBelowTheCoarseProgramsPeak() throws {
        for (checkpointing, coarse) in [(false, 492_345_344), (true, 219_006_976)] {
            let program = try StepProgramBuilder.trainingStep(Self.small, workload(checkpointing: checkpointing))
            try program.validate()
            let peak = try BestFitPlacement(program).peak
            print("small, checkpointing \(checkpointing): planned peak \(peak) B (0.6: \(coarse) B, \(String(format: "%.1f", 100 * (1 - Double(peak) / Double(coarse))))% less)")
            XCTAssertLessThan(peak, coarse, "checkpointing \(checkpointing)")
        }
    }

    /// No layer keeps its normed rows or silu(gate)·up (the backward remakes them in one layer's
    /// worth of workspace), nor the masked blocks of its attention probabilities: at the peak,
    /// L·T·(2C + I) fp32 (and the probabilities' share) fewer activation bytes than at f785816
    /// (one layer's worth with checkpointing, where only the recomputed layer holds a set) and
    /// T·(C + I) more workspace.
    func testLayersKeepNeitherNormedRowsNorAct() throws {
        let (t, c, i) = (4 * 256, 512, 1408)
        // At f785816: `loramd plan --config <small's config.json> --train --seq 256 --micro-batch 4
        // --lora-r 8 --base f32 [--checkpointing] --json`, breakdown and peak.
        for (checkpointing, layers, activation, workspace, peak) in [(false, 8, 324_861_952, 31_752_192, 477_366_272),
                                                                       (true, 1, 55_287_808, 31_752_192, 207_792_128)] {
            let plan = try MemoryPlan(original: Self.small, workload: workload(checkpointing: checkpointing))
            // And the probabilities keep only their causal row blocks of 64 (B·H·(S² − 64·(64 + 128 + 192 + 256)) fewer floats a layer).
            let packedProbs = layers * 4 * 8 * (256 * 256 - 64 * (64 + 128 + 192 + 256)) * 4
            let dropped = layers * t * (2 * c + i) * 4 + packedProbs, added = t * (c + i) * 4
            XCTAssertEqual(plan.breakdown[.activation], activation - dropped, "checkpointing \(checkpointing)")
            XCTAssertEqual(plan.breakdown[.workspace], workspace + added, "checkpointing \(checkpointing)")
            XCTAssertEqual(plan.peakBytes, peak - dropped + added, "checkpointing \(checkpointing)")
            print("small, checkpointing \(checkpointing): activations \(activation) -> \(activation - dropped) B, peak \(peak) -> \(plan.peakBytes) B")
        }
    }

    /// Every op says what the runtime runs; every gradient buffer lives within the one backward op
    /// that makes it; a checkpointed forward drops its whole set within the layer.
    func testOpsCarryTasksAndBuffersLiveNoLongerThanNeeded() throws {
        for checkpointing in [false, true] {
            let program = try StepProgramBuilder.trainingStep(Self.small, workload(checkpointing: checkpointing))
            XCTAssertTrue(program.ops.allSatisfy { $0.task != nil })
            let made = Dictionary(uniqueKeysWithValues: program.ops.enumerated().flatMap { i, op in op.creates.map { ($0, i) } })
            let dropped = Dictionary(uniqueKeysWithValues: program.ops.enumerated().flatMap { i, op in op.releases.map { ($0, i) } })
            for (index, buffer) in program.buffers.enumerated() where buffer.name.contains(".grad.") {
                XCTAssertEqual(made[index], dropped[index], buffer.name)
            }
            let transient = program.buffers.indices.filter { program.buffers[$0].name.contains(".forward.") }
            XCTAssertEqual(transient.isEmpty, !checkpointing)
            for index in transient {
                let (a, b) = (try XCTUnwrap(made[index]), try XCTUnwrap(dropped[index]))
                XCTAssertLessThanOrEqual(b - a, 1, "\(program.buffers[index].name): made and dropped by the layer's two forward ops")
            }
            // One backward op per block and layer, and the embedding's after the last.
            XCTAssertEqual(program.ops.filter { if case .mlpBackward = $0.task { return true }; return false }.count, 8)
            XCTAssertEqual(program.ops.last { $0.task != .optimizer }?.task, .embedBackward)
        }
    }
}
