import XCTest
@testable import MemoryPlanner

/// The Taylor pruning phase: gradients of every decoder linear of the original model,
/// no optimizer state, a calibration batch of activations.
final class ImportancePlanTests: XCTestCase {
    func testTheTaylorPhaseHoldsFp32WeightsAndGradientsButNoOptimizer() throws {
        let shape = MemoryPlanTests.small
        let plan = try ImportancePlan(original: shape, microBatch: 1, seqLen: 64)
        try plan.placement.verify()
        let breakdown = plan.breakdown
        XCTAssertEqual(breakdown[.weight], try shape.parameterCount * 4, "an fp32 copy of every weight")
        XCTAssertEqual(breakdown[.gradient], try ImportancePlan.scoredParameters(shape) * 4, "a gradient for every decoder linear, no other")
        XCTAssertEqual(try ImportancePlan.scoredParameters(shape), try shape.parameterCount - 2 * shape.vocab * shape.hidden - (2 * shape.layers.count + 1) * shape.hidden)
        XCTAssertEqual(breakdown[.optimizer], 0)
        XCTAssertGreaterThan(breakdown[.activation] ?? 0, 0)
        XCTAssertLessThanOrEqual(plan.placement.ratio, 1.05)
        // Layer checkpointing shrinks the activations, never the weights or gradients.
        let checkpointed = try ImportancePlan(original: shape, microBatch: 1, seqLen: 64, checkpointing: true)
        XCTAssertLessThan(checkpointed.peakBytes, plan.peakBytes)
        XCTAssertEqual(checkpointed.breakdown[.gradient], breakdown[.gradient])
    }

    func testOnSeventyBillionTheTaylorPhaseDwarfsTheCarriersTraining() throws {
        let importance = try ImportancePlan(original: .llama31_70B)
        let training = try MemoryPlan(original: .llama31_70B, pruning: .structured(ratio: 0.85), workload: Workload(
            kind: .train, microBatch: 1, seqLen: 512, lora: .init(r: 8, targets: LoRATarget.decoder), baseDType: .nf4))
        // 70.55 B parameters in fp32 plus their gradients: over 500 GiB, against ~23 GiB to train the carrier.
        XCTAssertGreaterThan(Double(importance.peakBytes) / Double(1 << 30), 500)
        XCTAssertGreaterThan(importance.peakBytes, 20 * training.peakBytes)
    }
}
