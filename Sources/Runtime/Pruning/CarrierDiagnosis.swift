import Foundation

/// A verdict on a carrier's distance from its original (`ModelComparison`), with what to change.
///
/// Levels, by the mean KL(original ‖ carrier) per token (nats), measured on SmolLM2-135M
/// (docs/loram-decisions.md, "Diagnostics"):
/// - `close` (KL ≤ `moderateKL`): an adapter trained on the carrier should transfer;
/// - `moderate` (≤ `farKL`): it transfers partly, expect a small gain on the original;
/// - `far`: the adapter is fitted to a different model, and recovered onto the original it may
///   make it worse than no fine-tuning at all.
public struct CarrierDiagnosis: Equatable, Sendable {
    public enum Level: String, Sendable { case close, moderate, far }

    public static let moderateKL = 0.5
    public static let farKL = 2.5

    public var level: Level
    public var summary: String
    public var suggestions: [String]

    /// `pruning`: the carrier's manifest (nil: not a pruned model). `alignedSteps`: optimizer steps of
    /// alignment the carrier has had (nil or 0: none). `layerCount`: the model's decoder layers.
    public init(_ comparison: ModelComparison.Result, pruning: PruningManifest?, alignedSteps: Int?, layerCount: Int,
                defaultAlignSteps: Int) {
        let kl = comparison.klPerToken
        level = !(kl <= Self.farKL) ? .far : kl > Self.moderateKL ? .moderate : .close
        let numbers = String(format: "KL(original ‖ carrier) %.3f nats/token, perplexity %.2f vs %.2f (×%.2f), top-1 agreement %.0f%%",
                             kl, comparison.otherPerplexity, comparison.referencePerplexity, comparison.perplexityRatio,
                             100 * comparison.top1Agreement)
        switch level {
        case .close: summary = "The carrier is close to the original (\(numbers)): an adapter trained on it should transfer."
        case .moderate: summary = "The carrier is moderately far from the original (\(numbers)): expect the recovered adapter to keep only part of its gain."
        case .far: summary = "The carrier is far from the original (\(numbers)): an adapter trained on it may make the original worse than no fine-tuning."
        }
        guard level != .close else {
            suggestions = []
            return
        }
        var s: [String] = []
        if let steps = alignedSteps, steps > 0 {
            s.append("Align longer: \(steps) steps were not enough; try align {steps: \(steps * 4)} (more general text, lr 5e-5…2e-4).")
        } else {
            s.append("Align the carrier before training: align: true (\(defaultAlignSteps) steps on general text) or align {dataset, steps: \(2 * defaultAlignSteps), lr: 1e-4}.")
        }
        if let pruning {
            if pruning.method.isStructured {
                if pruning.ratio > 0.2 {
                    s.append(String(format: "Prune less: ratio %.2f instead of %.2f.", (pruning.ratio / 2 * 100).rounded() / 100, pruning.ratio))
                }
                if let window = pruning.layers, window.count == 2 {
                    let width = window[1] - window[0]
                    if width > 2 {
                        let start = window[0] + width / 4, end = window[1] - width / 4
                        s.append("Prune a narrower layer window: layers [\(start), \(end)) instead of [\(window[0]), \(window[1])) of \(layerCount).")
                    }
                }
                switch pruning.method {
                case .taylor: s.append("Another criterion: l2 (weight magnitude) instead of taylor.")
                default: s.append("Another criterion: taylor (gradient importance on calibration data from your domain) instead of \(pruning.method.rawValue).")
                }
            } else if pruning.method == .magnitude, pruning.ratio > 0.3 {
                s.append(String(format: "Prune less: sparsity %.2f instead of %.2f.", (pruning.ratio / 2 * 100).rounded() / 100, pruning.ratio))
            }
        }
        suggestions = s
    }
}
