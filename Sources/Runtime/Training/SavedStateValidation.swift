import Foundation
import MemoryPlanner

/// A state.json is a file like any other: its numbers are checked before a job is built from
/// them, since the job's buffers, loader and schedule trust them (a zero micro-batch or a
/// negative step would trap, not fail).
extension TrainingJob.SavedState {
    var problem: String? {
        let s = settings
        if s.seqLen < 2 { return "settings.seqLen \(s.seqLen) is below 2" }
        if s.microBatch < 1 { return "settings.microBatch \(s.microBatch) is below 1" }
        if s.gradAccum < 1 { return "settings.gradAccum \(s.gradAccum) is below 1" }
        if s.steps < 1 { return "settings.steps \(s.steps) is below 1" }
        if !(s.lr > 0 && s.lr.isFinite) { return "settings.lr \(s.lr) is not a positive number" }
        if s.warmupSteps < 0 { return "settings.warmupSteps \(s.warmupSteps) is negative" }
        if !(s.weightDecay >= 0 && s.weightDecay.isFinite) { return "settings.weightDecay \(s.weightDecay) is not a number >= 0" }
        if let m = s.maxGradNorm, !(m > 0 && m.isFinite) { return "settings.maxGradNorm \(m) is not a positive number" }
        for (name, beta) in [("beta1", s.beta1), ("beta2", s.beta2)] where !(beta >= 0 && beta < 1) {
            return "settings.\(name) \(beta) is outside [0, 1)"
        }
        if !(s.eps > 0 && s.eps.isFinite) { return "settings.eps \(s.eps) is not a positive number" }
        if completedSteps < 0 || completedSteps > s.steps { return "completedSteps \(completedSteps) is outside 0...\(s.steps)" }
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

extension TrainingJob.SavedState {
    /// What only the model resumed on can tell: an adapter rank past the model's widest
    /// projection is no LoRA this model trained (and its factors would be sized from it).
    public func problem(model config: LlamaConfig) -> String? {
        guard let rank = adapter?.rank else { return nil }
        let widest = max(config.hiddenSize, config.intermediateSize)
        return rank > widest ? "adapter.rank \(rank) is wider than the model's widest projection (\(widest))" : nil
    }
}
