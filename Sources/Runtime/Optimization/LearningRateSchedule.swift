import Foundation

/// The learning-rate schedules of transformers (optimization.py), as the multiplier λ applied to
/// the base learning rate: the optimizer step k (0-based, torch's `scheduler.last_epoch == k`)
/// runs at `base · λ(k)`. With warmup W and T total steps:
///
/// - constant: λ = k / max(1, W) during warmup, then 1 (get_constant_schedule_with_warmup)
/// - linear: warmup, then max(0, (T − k) / max(1, T − W)) (get_linear_schedule_with_warmup)
/// - cosine: warmup, then max(0, ½(1 + cos(π · cycles · 2 · (k − W) / max(1, T − W)))),
///   cycles ½ by default (get_cosine_schedule_with_warmup); past T it rises again, as there
///
/// Computed in Double in transformers' order, so `lr(base:step:)` equals the Python float torch's
/// LambdaLR puts into the optimizer, bit for bit (Tests/Fixtures/optimizer/schedules.json).
public enum LearningRateSchedule: Equatable, Sendable {
    /// The shape without its step counts: what a request and state.json name.
    public enum Kind: String, Codable, CaseIterable, Sendable { case cosine, linear, constant }

    case constant(warmupSteps: Int)
    case linear(warmupSteps: Int, totalSteps: Int)
    case cosine(warmupSteps: Int, totalSteps: Int, cycles: Double = 0.5)

    public var warmupSteps: Int {
        switch self {
        case .constant(let w), .linear(let w, _), .cosine(let w, _, _): return w
        }
    }

    /// λ(step) for the 0-based optimizer step.
    public func multiplier(step: Int) -> Double {
        let warmup = warmupSteps
        if step < warmup { return Double(step) / Double(max(1, warmup)) }
        switch self {
        case .constant:
            return 1
        case .linear(_, let total):
            return max(0, Double(total - step) / Double(max(1, total - warmup)))
        case .cosine(_, let total, let cycles):
            let progress = Double(step - warmup) / Double(max(1, total - warmup))
            let factor = 0.5 * (1 + cos(Double.pi * cycles * 2 * progress))
            return max(0, factor)
        }
    }

    /// The learning rate of optimizer step `step` (0-based): base · λ(step), as LambdaLR computes it.
    public func lr(base: Double, step: Int) -> Double { base * multiplier(step: step) }
}
