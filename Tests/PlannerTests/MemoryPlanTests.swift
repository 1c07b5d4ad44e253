import Foundation
import XCTest
@testable import MemoryPlanner

/// Plans of real workloads: placement quality, the paper's accounting through the plan, speed of a
/// 70B dry run, and the search's suggestion fitting when applied.
final class MemoryPlanTests: XCTestCase {
    static let decoder = LoRATarget.decoder
    static let small = ModelShape(hidden: 512, intermediate: 1408, layerCount: 8, heads: 8, kvHeads: 4, headDim: 64, vocab: 4096)
    static let tiny = ModelShape(hidden: 64, intermediate: 176, layerCount: 2, heads: 4, kvHeads: 2, headDim: 16, vocab: 512)

    func testRealWorkloadsPlaceAtTheLowerBound() throws {
        var worst = 1.0
        for (name, shape) in [("tiny", Self.tiny), ("small", Self.small), ("7b", ModelShape.llama2_7B), ("70b", ModelShape.llama31_70B)] {
            for checkpointing in [false, true] {
                let train = Workload(kind: .train, microBatch: 2, seqLen: 256, lora: .init(r: 8, targets: Self.decoder), baseDType: .bf16, checkpointing: checkpointing)
                let generate = Workload(kind: .generate, seqLen: 512, baseDType: .bf16, newTokens: 128)
                for workload in [train, generate] {
                    let plan = try MemoryPlan(original: shape, workload: workload)
                    try plan.placement.verify()
                    XCTAssertGreaterThanOrEqual(plan.peakBytes, plan.lowerBoundBytes)
                    XCTAssertLessThanOrEqual(plan.placement.ratio, 1.05, "\(name) \(workload.kind) checkpointing \(checkpointing)")
                    worst = max(worst, plan.placement.ratio)
                    XCTAssertEqual(plan.breakdown.values.reduce(0, +), plan.lowerBoundBytes, "the breakdown is what is live at the peak")
                }
            }
        }
        print("real workloads: worst peak / lower bound \(worst)")
    }

    func testPaperAccountingThroughThePlan() throws {
        let workload = Workload(kind: .train, microBatch: 1, seqLen: 512, lora: .init(r: 8, targets: Self.decoder), baseDType: .nf4)
        let plan = try MemoryPlan(original: .llama31_70B, pruning: .structured(ratio: 0.85), workload: workload)
        XCTAssertEqual(plan.accounting.pruned, 17_849_982_976)
        XCTAssertEqual(String(format: "%.2f", plan.accounting.qloramReduction), "15.81")
        XCTAssertEqual(String(format: "%.2f", Double(plan.paperBytes) / Double(1 << 30)), "8.31")
        var bf16 = workload
        bf16.baseDType = .bf16
        let loram = try MemoryPlan(original: .llama2_70B, pruning: .structured(ratio: 0.85), workload: bf16)
        XCTAssertEqual(String(format: "%.2f", Double(loram.paperBytes) / Double(1 << 30)), "30.31")
    }

    func testSeventyBillionDryRunIsFast() throws {
        let workload = Workload(kind: .train, microBatch: 1, seqLen: 512, lora: .init(r: 8, targets: Self.decoder), baseDType: .nf4)
        // The best of three: a shared 2-core VM stalls a single run now and then.
        var elapsed = Double.infinity
        var plans: [MemoryPlan] = []
        for _ in 0..<3 {
            let start = Date()
            plans.append(try MemoryPlan(original: .llama31_70B, pruning: .structured(ratio: 0.85), workload: workload))
            elapsed = min(elapsed, Date().timeIntervalSince(start))
        }
        let plan = plans[0]
        // Not a speed bound (a busy machine is many times slower): 0.08-0.11 s for the best of three
        // in an idle debug build (2026-12-02), so 3 s catches only a change in how planning scales.
        XCTAssertLessThan(elapsed, 3, "a 70B dry run answers in seconds in a debug build (best of 3 took \(elapsed) s)")
        // NF4 linears of the carrier plus 16-bit embeddings and lm_head: about 11.5 GiB (paper §3.3's estimate).
        let weights = Double(plan.breakdown[.weight]!) / Double(1 << 30)
        XCTAssertEqual(weights, 11.48, accuracy: 0.05)
        // NF4 buffers are not multiples of the alignment; the breakdown counts them as placed.
        XCTAssertEqual(plan.breakdown.values.reduce(0, +), plan.lowerBoundBytes)
    }

    func testTheSuggestionFitsWhenApplied() throws {
        let workload = Workload(kind: .train, microBatch: 8, seqLen: 512, lora: .init(r: 8, targets: Self.decoder), baseDType: .bf16)
        let cap = 24 << 30
        let plan = try MemoryPlan(original: .llama31_70B, workload: workload)
        XCTAssertGreaterThan(plan.peakBytes, cap)
        let suggestion = try XCTUnwrap(PlanSearch.fit(original: .llama31_70B, pruning: nil, workload: workload, capBytes: cap))
        let applied = try MemoryPlan(original: .llama31_70B, pruning: suggestion.pruning, workload: suggestion.workload)
        XCTAssertLessThanOrEqual(applied.peakBytes, cap)
        XCTAssertEqual(applied.workload.microBatch * applied.workload.gradAccum, 8, "the effective batch is kept")
        // A cap nothing can meet has no suggestion.
        XCTAssertNil(PlanSearch.fit(original: .llama31_70B, pruning: nil, workload: workload, capBytes: 1 << 20))
    }

    /// Shorter sequences come after checkpointing, micro-batch and NF4, and before pruning; the
    /// tokens per optimizer step stay the same.
    func testSearchShortensSequencesBeforePruning() throws {
        let workload = Workload(kind: .train, microBatch: 1, seqLen: 8192, lora: .init(r: 8, targets: LoRATarget.decoder),
                                baseDType: .nf4, checkpointing: true)
        let full = try MemoryPlan(original: .llama31_8B, workload: workload)
        var half = workload
        half.seqLen = 4096
        let halved = try MemoryPlan(original: .llama31_8B, workload: half)
        XCTAssertLessThan(halved.peakBytes, full.peakBytes)
        let suggestion = try XCTUnwrap(PlanSearch.fit(original: .llama31_8B, pruning: nil, workload: workload, capBytes: halved.peakBytes))
        XCTAssertNil(suggestion.pruning)
        XCTAssertEqual(suggestion.workload.seqLen * suggestion.workload.gradAccum, 8192)
        XCTAssertEqual(suggestion.workload.seqLen, 4096)
        XCTAssertEqual(suggestion.changes.first { $0.0 == "seqLen" }?.1, "4096")
        XCTAssertLessThanOrEqual(suggestion.plan.peakBytes, halved.peakBytes)
    }
}
