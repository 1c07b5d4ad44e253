import Foundation
import MemoryPlanner

/// Structured pruning of real weights (LoRAM-Rand / LoRAM-Stru): in each layer of the window,
/// whole attention groups and MLP neurons are scored (`StructuredImportance`), the best kept, and
/// every tensor of the family's layout cut along its axes' slice rules (`TensorSpec.slices`): q
/// rows (and q's bias) of the kept q heads, k and v rows (and biases) of the kept kv heads, o
/// columns of the kept q heads, gate and up rows and down columns of the kept neurons; norms over
/// the hidden width or the head dimension stay whole. How many
/// are kept comes from `ModelShape.structurallyPruned`, the planner's own rules, so a plan made
/// from the config alone and the pruned model always agree.
///
/// The result is a new model with the per-layer widths in its config and a `PruningManifest`
/// recording the kept indices (ascending). Sliced matrices are new weights in the original's
/// dtype; untouched tensors (embeddings, norms, lm_head, layers outside the window) are shared
/// with the original, since weights are immutable.
///
///     let carrier = try StructuredPruner.prune(model, ratio: 0.65, importance: .random(seed: 7))
///     carrier.pruning!.kept[4]!.qHeads   // the heads layer 4 kept
public enum StructuredPruner {
    /// `layers`: the window (nil: `ModelShape.defaultPrunedLayers`). Throws `PruningError` for a
    /// ratio or window the shape rules refuse. `model` must be an original (no manifest).
    /// `checkpoint` runs before each layer; what it throws (a cancellation) ends the pruning.
    public static func prune(_ model: DecoderModel, ratio: Double, layers window: Range<Int>? = nil,
                             importance: StructuredImportance, checkpoint: () throws -> Void = {}) throws -> DecoderModel {
        precondition(model.pruning == nil, "prune the original model, not a pruned one")
        let config = model.config
        let prunedShape = try config.modelShape.structurallyPruned(ratio: ratio, layers: window)
        let window = window ?? ModelShape.defaultPrunedLayers(layerCount: config.layerCount)
        let d = config.headDim
        let random: StructuredImportance.RandomScores?
        var method = PruningMethod.l2, seed: UInt64?
        switch importance {
        case .random(let s):
            random = .init(seed: s)
            method = .random
            seed = s
        case .l2: random = nil
        case .taylor: random = nil; method = .taylor
        }

        var prunedConfig = config
        var layers = model.layers
        var kept = [PruningManifest.KeptIndices?](repeating: nil, count: config.layerCount)
        for l in window {
            try checkpoint()
            let original = model.layers[l], target = prunedShape.layers[l]
            let scores = importance.scores(layer: l, of: model, random: random)
            let isMHA = original.shape.heads == original.shape.kvHeads
            let group = original.shape.heads / original.shape.kvHeads
            let kvHeads: [Int], qHeads: [Int]
            if isMHA {
                qHeads = StructuredImportance.top(target.heads, of: scores.attention)
                kvHeads = qHeads
            } else {
                kvHeads = StructuredImportance.top(target.kvHeads, of: scores.attention)
                qHeads = kvHeads.flatMap { ($0 * group)..<($0 * group + group) }
            }
            let neurons = StructuredImportance.top(target.intermediate, of: scores.neurons)
            let indices = PruningManifest.KeptIndices(qHeads: qHeads, kvHeads: kvHeads, neurons: neurons)
            kept[l] = indices
            let shape = ModelShape.Layer(heads: target.heads, kvHeads: target.kvHeads, intermediate: target.intermediate)
            prunedConfig.layers[l] = shape
            layers[l] = slice(original, keeping: indices, shape: shape, headDim: d, layout: config.family.layout)
        }
        let manifest = PruningManifest(method: method, ratio: ratio, layers: window, seed: seed,
                                       original: config.layers, kept: kept)
        return DecoderModel(config: prunedConfig, embedding: model.embedding, layers: layers, finalNorm: model.finalNorm,
                          lmHead: config.tiedEmbeddings ? nil : model.lmHead, pruning: manifest)
    }

    /// `layer` cut down to the kept heads and neurons, each tensor along its slice rules.
    static func slice(_ layer: DecoderModel.DecoderLayer, keeping kept: PruningManifest.KeptIndices,
                      shape: ModelShape.Layer, headDim d: Int, layout: ModelLayout) -> DecoderModel.DecoderLayer {
        func ranges(_ slice: TensorSpec.Slice) -> [Range<Int>]? {
            switch slice {
            case .queryHeads: return contiguousRanges(kept.qHeads, width: d)
            case .kvGroups: return contiguousRanges(kept.kvHeads, width: d)
            case .neurons: return contiguousRanges(kept.neurons)
            case .none: return nil
            }
        }
        var result = layer
        result.shape = shape
        for spec in layout.layer {
            let rows = ranges(spec.slices[0]), cols = spec.slices.count > 1 ? ranges(spec.slices[1]) : nil
            switch spec.role {
            case .linear(let target):
                var weight = layer.weight(target)
                if let rows { weight = weight.keepingRows(rows) }
                if let cols { weight = weight.keepingColumns(cols) }
                result.setWeight(weight, for: target)
            default:
                guard let rows, let values = layer.vectors[spec.role] else { continue }
                result.vectors[spec.role] = rows.flatMap { values[$0] }
            }
        }
        return result
    }

    /// Bytes the pruned model holds, before anything is cut: what the memory budget is charged.
    /// The tensors shared with the original count too, since they outlive its unloading.
    public static func plannedBytes(_ model: DecoderModel, ratio: Double, layers window: Range<Int>? = nil) throws -> Int {
        let config = model.config
        let shape = try config.modelShape.structurallyPruned(ratio: ratio, layers: window)
        var bytes = model.embedding.byteCount + model.finalNorm.count * 4 + (config.tiedEmbeddings ? 0 : model.lmHead.byteCount)
        for (l, layer) in shape.layers.enumerated() {
            bytes += try shape.vectorParameters(layer) * 4 + model.layers[l].q.dtype.byteSize * shape.linearParameters(layer)
        }
        return bytes
    }
}
