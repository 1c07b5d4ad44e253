import Foundation
import MemoryPlanner

/// A state.json is a file like any other: its numbers are checked before a job is built from
/// them, since the job's buffers, loader and schedule trust them (a zero micro-batch or a
/// negative step would trap, not fail).
extension TrainingJob.SavedState {
    var problem: String? {
        if let p = settings.problem { return "settings.\(p.field) \(p.requirement)" }
        if completedSteps < 0 || completedSteps > settings.steps { return "completedSteps \(completedSteps) is outside 0...\(settings.steps)" }
        if optimizerStep < 0 || optimizerStep > completedSteps { return "optimizerStep \(optimizerStep) is outside 0...\(completedSteps)" }
        if mode != (adapter == nil ? "full" : "lora") { return "mode '\(mode)' does not match \(adapter == nil ? "a state without" : "a state with") an adapter" }
        if let a = adapter {
            if a.rank < 1 { return "adapter.rank \(a.rank) is below 1" }
            if !a.alpha.isFinite { return "adapter.alpha is not a number" }
            if !(a.dropout >= 0 && a.dropout < 1) { return "adapter.dropout \(a.dropout) is outside [0, 1)" }
            if let bad = a.targets.first(where: { LoRATarget(rawValue: $0) == nil }) { return "adapter.targets names '\(bad)', not a LoRA target" }
            if a.targets.isEmpty { return "adapter.targets is empty" }
        }
        return nil
    }
}

extension TrainingJob.Settings {
    /// The one rule for training settings, a request's (train/create) and a saved state's: the
    /// first setting a job could not run with, by its field name, and what it must be.
    public var problem: (field: String, requirement: String)? {
        if seqLen < 2 { return ("seqLen", "must be at least 2") }
        if microBatch < 1 { return ("microBatch", "must be at least 1") }
        if steps < 1 { return ("steps", "must be at least 1") }
        if !(lr > 0 && lr.isFinite) { return ("lr", "must be a positive number") }
        if gradAccum < 1 { return ("gradAccum", "must be at least 1") }
        if warmupSteps < 0 { return ("warmupSteps", "must be >= 0") }
        if !(weightDecay >= 0 && weightDecay.isFinite) { return ("weightDecay", "must be >= 0") }
        // A request's 0 turns clipping off (nil) before this rule sees it.
        if let m = maxGradNorm, !(m > 0 && m.isFinite) { return ("maxGradNorm", "must be >= 0 (0 turns clipping off)") }
        for (name, beta) in [("beta1", beta1), ("beta2", beta2)] where !(beta >= 0 && beta < 1) { return (name, "must be in [0, 1)") }
        if !(eps > 0 && eps.isFinite) { return ("eps", "must be a positive number") }
        return nil
    }
}

extension TrainingJob.SavedState {
    /// What only the model resumed on can tell: an adapter rank past the model's widest
    /// projection is no LoRA this model trained (and its factors would be sized from it).
    public func problem(model config: ModelConfig) -> String? {
        // Untied for training, a tied model's head stays its embedding as held (StepWeights): never trained.
        if settings.untieEmbeddings && config.tiedEmbeddings && !FrozenTensors(settings.frozen).contains("lm_head.weight") {
            return "settings.untieEmbeddings keeps the output head as it was, but settings.frozen does not name lm_head"
        }
        guard let rank = adapter?.rank else { return nil }
        let widest = max(config.hiddenSize, config.intermediateSize)
        return rank > widest ? "adapter.rank \(rank) is wider than the model's widest projection (\(widest))" : nil
    }
}
