import Foundation
import RPC
import Runtime

/// `model/compare`: a dry measurement of how far a model (a LoRAM carrier) is from another (its
/// original) on a small calibration sample, in two sessions charged side by side: both
/// perplexities, their ratio, the mean KL of their next-token distributions, and a verdict with
/// suggestions. Nothing is trained or kept.
extension InferenceService {
    /// The measurement and its verdict, as `model/compare` answers it. `alignedSteps` overrides
    /// what the carrier's manifest says of its alignment.
    func compare(reference: LoadedModel, other: LoadedModel, dataset param: DatasetParam, seqLen: Int?, maxSamples: Int?,
                       alignedSteps: Int?, context: RequestContext) throws -> CompareResult {
        guard reference.model.config.vocabSize == other.model.config.vocabSize else {
            throw RPCError.invalidParams(field: "otherModelId", "has a vocabulary of \(other.model.config.vocabSize), \(reference.handle) of \(reference.model.config.vocabSize); compare models that share one")
        }
        let seqLen = seqLen ?? Daemon.compareDefaultSeqLen
        guard seqLen >= 2 else { throw RPCError.invalidParams(field: "seqLen", "must be at least 2") }
        let maxSamples = maxSamples ?? Daemon.compareDefaultSamples
        guard maxSamples >= 1 else { throw RPCError.invalidParams(field: "maxSamples", "must be at least 1") }
        let dataset = try DatasetReader.read(param, field: "dataset", model: reference)
        let sequences = Array(dataset.sequences(seqLen: seqLen).filter { $0.ids.count >= 2 }.prefix(maxSamples))
        guard !sequences.isEmpty else { throw RPCError.invalidParams(field: "dataset", "has no sequence of two tokens or more") }
        let capacity = sequences.map(\.ids.count).max() ?? 2
        // Each session holds every row's logits of the longest sequence (charged with it).
        let result = try ErrorMapping.translating {
            try withSession(reference, capacity: capacity, logitsRows: capacity, request: context, ownerTag: ".reference") { first in
                try withSession(other, capacity: capacity, logitsRows: capacity, request: context, ownerTag: ".other") { second in
                    try ModelComparison.compare(reference: first, other: second, sequences: sequences, checkpoint: context.checkCancelled)
                }
            }
        }
        guard result.tokens > 0 else { throw RPCError.invalidParams(field: "dataset", "has no token with a label to predict") }
        let pruning = other.model.pruning
        let diagnosis = CarrierDiagnosis(result, pruning: pruning, alignedSteps: alignedSteps ?? pruning?.alignment?.steps,
                                         layerCount: other.model.config.layerCount, defaultAlignSteps: Daemon.defaultAlignSteps)
        return CompareResult(perplexity: .init(model: result.referencePerplexity, other: result.otherPerplexity),
                             loss: .init(model: result.referenceLoss, other: result.otherLoss), perplexityRatio: result.perplexityRatio,
                             klPerToken: result.klPerToken, top1Agreement: result.top1Agreement, tokens: result.tokens, sequences: sequences.count,
                             seqLen: seqLen, verdict: .init(level: diagnosis.level.rawValue, summary: diagnosis.summary, suggestions: diagnosis.suggestions),
                             thresholds: .init(moderateKL: CarrierDiagnosis.moderateKL, farKL: CarrierDiagnosis.farKL))
    }
}

/// model/compare's answer (also loram/run's diagnostics).
struct CompareResult: WireResult {
    struct Pair: WireResult { var model: Double; var other: Double }
    struct Verdict: WireResult { var level: String; var summary: String; var suggestions: [String] }
    struct Thresholds: WireResult { var moderateKL: Double; var farKL: Double }
    var perplexity: Pair
    var loss: Pair
    var perplexityRatio: Double
    var klPerToken: Double
    var top1Agreement: Double
    var tokens: Int
    var sequences: Int
    var seqLen: Int
    var verdict: Verdict
    var thresholds: Thresholds
}
