import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// `activationDtype: "bf16"`: the larger slots of each layer are kept in bf16 for the backward.
/// The forward still computes in fp32 (the loss is the fp32 loss, bit for bit); the gradients
/// move by what rounding the kept values to bf16 does, which this bounds against PEFT's.
final class ActivationDTypeTests: XCTestCase {
    /// Against the golden gradients (tiny_lora_grads.safetensors): fp32 activations meet the golden
    /// README's max|d| ≤ 2e-5 · max|ref|; bf16 activations meet max|d| ≤ 5e-3 · max|ref| (bf16
    /// keeps 8 bits of mantissa, a relative rounding of at most 2^-9), and the loss is the same.
    func testBF16ActivationsKeepTheGradientsWithinTheirTolerance() throws {
        let golden = try TrainingGradientTests.tensors("tiny_lora_grads.safetensors")
        let maxReference = golden.values.flatMap { $0 }.map(abs).max()!
        let (full, fullLoss) = try TrainingGradientTests.goldenStep(activations: .f32)
        let (half, halfLoss) = try TrainingGradientTests.goldenStep(activations: .bf16)
        XCTAssertEqual(halfLoss, fullLoss, "the forward computes in fp32 either way")
        let (worstFull, worstHalf) = (try TrainingGradientTests.worstGoldenDifference(full, golden),
                                      try TrainingGradientTests.worstGoldenDifference(half, golden))
        print("golden gradients, worst |d| / max|ref|: f32 activations \(worstFull / maxReference), bf16 \(worstHalf / maxReference)")
        XCTAssertLessThanOrEqual(worstFull, 2e-5 * maxReference)
        XCTAssertLessThanOrEqual(worstHalf, 5e-3 * maxReference)
    }
}

extension ActivationDTypeTests {
    /// Twelve LoRA steps (every target, dropout) on a small random model: the same first loss, and
    /// later losses within 1e-3 (relative) of fp32 activations'.
    func testBF16ActivationsTrainAsFP32ActivationsDo() throws {
        let full = try RemadeActivationsTests.twelveStepLosses { $0.activationDType = .f32 }
        let half = try RemadeActivationsTests.twelveStepLosses { $0.activationDType = .bf16 }
        XCTAssertEqual(full[0], half[0])
        let worst = zip(full, half).map { abs($0 - $1) / $0 }.max()!
        print("12 steps: losses f32 \(full.first!) -> \(full.last!), bf16 \(half.first!) -> \(half.last!), worst relative |d| \(worst)")
        XCTAssertLessThanOrEqual(worst, 1e-3)
    }

    /// The plan keeps the 16-bit slots in half the bytes, plus one layer's worth of fp32 to compute
    /// in; with checkpointing (only layer inputs kept) the option changes nothing.
    func testTheSixteenBitSlotsTakeHalfTheBytes() throws {
        let shape = ModelShape(hidden: 512, headDim: 64, vocab: 4096, tiedEmbeddings: false,
                               layers: Array(repeating: .init(heads: 8, kvHeads: 4, intermediate: 1408), count: 8))
        func plan(_ activations: Workload.ActivationDType, checkpointing: Bool) throws -> MemoryPlan {
            try MemoryPlan(original: shape, workload: Workload(kind: .train, microBatch: 4, seqLen: 256, lora: .init(r: 8, targets: LoRATarget.decoder),
                                                               baseDType: .f32, checkpointing: checkpointing, activationDType: activations))
        }
        // Per layer: q, attention, residual (T·C each), k, v (T·KV·D), probs (B·H times the causal
        // blocks of S = 256: 64 rows of 64, 128, 192 and 256 keys), gate, up (T·I).
        let (t, c) = (1024, 512)
        let floats = 3 * t * c + 2 * t * 256 + 4 * 8 * 64 * (64 + 128 + 192 + 256) + 2 * t * 1408
        let (full, half) = (try plan(.f32, checkpointing: false), try plan(.bf16, checkpointing: false))
        XCTAssertEqual(half.breakdown[.activation], full.breakdown[.activation]! - 8 * floats * 2)
        XCTAssertEqual(half.breakdown[.workspace], full.breakdown[.workspace]! + floats * 4)
        print("small, 4 x 256: peak \(full.peakBytes) B with f32 activations, \(half.peakBytes) B with bf16")
        XCTAssertEqual(try plan(.bf16, checkpointing: true).peakBytes, try plan(.f32, checkpointing: true).peakBytes)
    }
}
