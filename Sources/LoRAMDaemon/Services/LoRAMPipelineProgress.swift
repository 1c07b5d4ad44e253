import Foundation
import RPC

/// How much of `loram/run`'s progress each stage is, so the percentage tracks wall time. Equal
/// shares put SmolLM2's training (80% of the run) between 50% and 62.5%, and clients' ETAs, drawn
/// from the rate so far, came out 8x too long. The work is counted in forward-token equivalents,
/// whose cost scales with the model's size as loading and quantizing do, so the shares hold
/// across sizes. Measured on the main job (SmolLM2-135M, release, 2 cores, bench/pipeline_progress.py):
/// eval 3.0 ms per token, a checkpointed training token 11.6 ms (3.9 forwards), the carrier
/// check 4.2 ms per sampled token (1.4 forwards per model), load 0.6 s, quantize 2.2 s.
struct PipelineProgress {
    /// The stage names in order, with their weights.
    let stages: [String]
    let weights: [Double]

    init(stages: [String], train: [(String, JSONValue)], align: Daemon.AlignSettings?, prune: JSONValue?,
         diagnostics: Daemon.DiagnosticsSettings?, eval: [Daemon.EvalDataset]) {
        func int(_ fields: [(String, JSONValue)], _ key: String, _ fallback: Int) -> Double {
            Double(max(1, fields.first { $0.0 == key }?.1.intValue.map(Int.init) ?? fallback))
        }
        /// Tokens a run of steps trains, times forwards per token (the backward is two; a checkpointed layer runs its forward twice).
        func training(_ fields: [(String, JSONValue)], steps: Int) -> Double {
            let checkpointed = fields.first { $0.0 == "checkpointing" }?.1.stringValue.map { $0 != "none" } ?? false
            return int(fields, "steps", steps) * int(fields, "gradAccum", 1) * int(fields, "microBatch", 1) * int(fields, "seqLen", 512)
                * (checkpointed ? 4 : 3)
        }
        let sampled = Double((diagnostics?.maxSamples ?? Daemon.compareDefaultSamples) * (diagnostics?.seqLen ?? Daemon.compareDefaultSeqLen))
        // Four arms per eval dataset (maxSamples and seqLen unset: guessed as 64 x 512); with none, the
        // verdict's two arms on the diagnostics sample.
        let evaluated = eval.isEmpty ? 2 * sampled : eval.reduce(0) { $0 + 4 * Double(($1.maxSamples ?? 64) * ($1.seqLen ?? 512)) }
        let taylor = prune?["method"]?.stringValue == "taylor"
        self.stages = stages
        self.weights = stages.map { stage -> Double in
            switch stage {
            case "load", "carrier": return 200
            case "prune": return taylor ? 6000 : 50  // taylor: a forward and backward over its calibration rows
            case "check": return 3 * sampled
            case "align": return align.map { training($0.fields, steps: Daemon.alignDefaults.steps) } ?? 0  // and its second check
            case "quantize": return 700
            case "train": return training(train, steps: 1)
            case "evaluate": return evaluated
            default: return 50  // recover, save
            }
        }
    }

    /// The percentage at `fraction` (0...1) of the stage at `index`.
    func percentage(stage index: Int, _ fraction: Double) -> Double {
        let total = weights.reduce(0, +)
        guard total > 0, weights.indices.contains(index) else { return 100 }
        let before = weights[..<index].reduce(0, +)
        return 100 * (before + weights[index] * min(1, max(0, fraction))) / total
    }
}
