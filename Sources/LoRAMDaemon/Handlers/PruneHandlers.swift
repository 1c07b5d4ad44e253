import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `model/prune`, `model/quantize` and `adapter/recover`: decoded here, done by `PruningService`.
extension Daemon {
    struct PruneParams: Decodable {
        var modelId: String
        var method: String
        var ratio: Double?
        var layers: [Int]?
        var calibration: DatasetParam?
        var seed: UInt64?
        var seqLen: Int?
    }

    /// LLM-Pruner's calibration rows are 64 tokens long.
    static let defaultCalibrationSeqLen = 64

    /// A shape rule's refusal as InvalidParams on the field that caused it.
    static func invalidParams(_ error: PruningError) -> RPCError {
        switch error {
        case .ratioOutOfRange, .nothingKept: return .invalidParams(field: "ratio", "\(error)")
        case .layersOutOfRange: return .invalidParams(field: "layers", "\(error)")
        case .badGroup: return .invalidParams(field: "method", "\(error)")
        }
    }

    func registerPruning() {
        router.register("model/prune") { [unowned self] (params: PruneParams, context) in
            try pruning.prune(params, context: context)
        }
        router.register("model/quantize") { [unowned self] (params: QuantizeParams, context) in
            try pruning.quantize(params, context: context)
        }
        router.register("adapter/recover") { [unowned self] (params: RecoverParams, _) in
            try pruning.recover(params)
        }
    }

    static func pruneRatio(_ params: PruneParams, method: PruningMethod) throws -> Double {
        if method == .semi {
            // 2:4 is a fixed 50 %; a ratio is allowed only to say so.
            if let ratio = params.ratio, ratio != 0.5 {
                throw RPCError.invalidParams(field: "ratio", "semi prunes 2 of every 4 weights, a ratio of 0.5; got \(ratio)")
            }
            return 0.5
        }
        guard let ratio = params.ratio else { throw RPCError.invalidParams(field: "ratio", "is required for \(method.rawValue)") }
        guard ratio.isFinite, ratio >= 0, ratio < 1 else { throw invalidParams(PruningError.ratioOutOfRange(ratio)) }
        return ratio
    }

    static func pruneWindow(_ params: PruneParams, method: PruningMethod) throws -> Range<Int>? {
        guard let layers = params.layers else { return nil }
        guard method.isStructured else {
            throw RPCError.invalidParams(field: "layers", "applies to structured methods (random, l2, taylor); \(method.rawValue) prunes every decoder linear")
        }
        guard layers.count == 2, layers[0] >= 0, layers[0] < layers[1] else {
            throw RPCError.invalidParams(field: "layers", "must be [start, end) with 0 <= start < end, got \(layers)")
        }
        return layers[0]..<layers[1]
    }

    /// Per layer, what the pruned model keeps.
    static func layerReport(_ model: LlamaModel) -> JSONValue {
        .array(model.config.layers.enumerated().map { index, shape in
            .object([("layer", .int(Int64(index))), ("heads", .int(Int64(shape.headCount))), ("kvHeads", .int(Int64(shape.kvHeadCount))),
                     ("neurons", .int(Int64(shape.intermediateSize))), ("pruned", .bool(model.pruning?.kept[index] != nil))])
        })
    }
}
