import Foundation
import MemoryPlanner

/// ∂L/∂W of every decoder linear over a calibration set, for first-order Taylor importance
/// (LLM-Pruner's `param_first`, LoRAM-Stru). The gradients come from the full-parameter training
/// step on an fp32 copy of the model: embeddings, norms and lm_head are frozen (no gradient
/// buffers), since only the decoder linears are scored. L is the mean next-token loss over every
/// labelled token of the set, as LLM-Pruner's one batch of 10 × 64 tokens computes it; its scale
/// does not change the ranking.
///
///     let calibration = try TaylorCalibration(model: model, examples: dataset.sequences(seqLen: 64), seqLen: 64)
///     let pruned = try StructuredPruner.prune(model, ratio: 0.5, importance: .taylor(calibration))
public final class TaylorCalibration: @unchecked Sendable {
    public let weights: StepWeights
    public let gradients: GradientBuffers
    /// The calibration loss (mean over labelled tokens) and how many tokens it averaged.
    public let loss: Double
    public let tokens: Int

    /// What the calibration holds beside the model, from MemoryPlanner's `ImportancePlan` (the
    /// plan `memory/plan` shows as the "prune" phase): the fp32 copy, one gradient per decoder
    /// linear, and the step's arena. The step runs in that very plan.
    public static func plan(config: ModelConfig, seqLen: Int, microBatch: Int = 1) throws -> ImportancePlan {
        try ImportancePlan(original: config.modelShape, microBatch: microBatch, seqLen: seqLen)
    }

    /// Throws `SizeError` for a seqLen or micro-batch past `SizeLimits`, or whose plan overflows.
    public static func plannedBytes(config: ModelConfig, seqLen: Int, microBatch: Int = 1) throws -> Int {
        try plan(config: config, seqLen: seqLen, microBatch: microBatch).peakBytes
    }

    /// `checkpoint` runs before each calibration batch and between layers; what it throws (a
    /// cancellation) ends the pass, and the fp32 copy and its gradients go with it. Throws as well
    /// when the plan cannot be placed or its arena made.
    public init(model: DecoderModel, examples: [Dataset.Example], seqLen: Int, microBatch: Int = 1,
                checkpoint: () throws -> Void = {}) throws {
        weights = StepWeights(model: model, copy: true)
        gradients = GradientBuffers(weights: weights, frozen: ["embed_tokens", "lm_head", "norm"])
        let arena = try PlannedBuffers(Self.plan(config: model.config, seqLen: seqLen, microBatch: microBatch).program)
        let step = TrainingStep(weights: weights, adapter: nil, gradients: gradients, microBatch: microBatch,
                                seqLen: seqLen, checkpointing: false, arena: arena)
        let batches = DataLoader.singlePass(examples: examples, mode: .truncate, microBatch: microBatch, seqLen: seqLen,
                                            padId: model.config.eosTokenIds.first ?? 0)
        let normalizer = max(1, batches.reduce(0) { $0 + $1.lossTokens })
        gradients.zero()
        var lossSum = 0.0
        for batch in batches {
            try checkpoint()
            lossSum += try step.run(ids: batch.ids, labels: batch.labels, normalizer: normalizer, dropoutSeed: nil, checkpoint: checkpoint).lossSum
        }
        loss = lossSum / Double(normalizer)
        tokens = batches.reduce(0) { $0 + $1.lossTokens }
    }

    /// The fp32 weight and its gradient of `target` in layer `layer`.
    func tensors(layer: Int, _ target: LoRATarget) -> (Weight, UnsafePointer<Float>) {
        let weight = weights.layers[layer].weight(target)
        guard let gradient = gradients.gradient(for: weight) else { preconditionFailure("no gradient for layer \(layer) \(target)") }
        return (weight, UnsafePointer(gradient))
    }
}
