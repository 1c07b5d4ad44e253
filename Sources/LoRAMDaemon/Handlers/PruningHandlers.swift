import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `model/prune`, `model/quantize` and `adapter/recover`: decoded here, done by `PruningService`.
/// Pruning makes a new model (the carrier) beside the original, which stays loaded; quantizing
/// makes its NF4 copy; recovery an adapter on the original from one trained on the carrier.
extension Daemon {
    struct PruneParams: Decodable {
        var modelId: String
        var method: String
        var ratio: Double?
        var layers: [Int]?
        var calibration: DatasetParam?
        var seed: UInt64?
        @SizeIfGiven<SizeBounds.SeqLen> var seqLen: Int?

        /// The request's own rules (apart from the model): method, ratio, layer window, calibration.
        func checked() throws -> (method: PruningMethod, ratio: Double, window: Range<Int>?, seqLen: Int) {
            let methods = PruningMethod.allCases.map(\.rawValue).joined(separator: ", ")
            guard let method = PruningMethod(rawValue: self.method) else {
                throw RPCError.invalidParams(field: "method", "must be one of \(methods), got '\(self.method)'")
            }
            let ratio = try Daemon.pruneRatio(self, method: method)
            let window = try Daemon.pruneWindow(self, method: method)
            if method == .taylor, calibration == nil {
                throw RPCError.invalidParams(field: "calibration", "is required for taylor: its gradients score the heads and neurons")
            }
            if method != .taylor, calibration != nil || seqLen != nil {
                throw RPCError.invalidParams(field: calibration != nil ? "calibration" : "seqLen", "applies to taylor only")
            }
            if method != .random, seed != nil { throw RPCError.invalidParams(field: "seed", "applies to random only") }
            let seqLen = self.seqLen ?? Daemon.defaultCalibrationSeqLen
            guard seqLen >= 2 else { throw RPCError.invalidParams(field: "seqLen", "must be at least 2, got \(seqLen)") }
            return (method, ratio, window, seqLen)
        }
    }

    struct QuantizeParams: Decodable {
        var modelId: String
        var format: String
        var blockSize: Int?
        var doubleQuant: Bool?

        /// The request's own rules (apart from the model): block size and double quantization.
        func checked() throws -> (blockSize: Int, doubleQuant: Bool) {
            guard format.lowercased() == "nf4" else { throw RPCError.invalidParams(field: "format", "must be 'nf4', got '\(format)'") }
            let blockSize = blockSize ?? 64
            guard NF4Tensor.supportedBlockSizes.contains(blockSize) else {
                throw RPCError.invalidParams(field: "blockSize", "must be a power of two from 32 to 4096, got \(blockSize)")
            }
            return (blockSize, doubleQuant ?? true)
        }
    }

    struct QuantizeResult: Encodable {
        var modelId: String
        var bytes: Int
        var parameters: Int
        var bytesPerParameter: Double
    }

    struct RecoverParams: Decodable {
        var adapterId: String
        var targetModelId: String
        var fill: String?
        var seed: UInt64?

        /// What the pruned rows and columns are filled with.
        func checkedFill() throws -> LoRARecovery.Fill {
            switch fill ?? "zero" {
            case "zero":
                if seed != nil { throw RPCError.invalidParams(field: "seed", "applies to fill normal only") }
                return .zero
            case "normal": return .normal(seed: seed ?? 0)
            case let other: throw RPCError.invalidParams(field: "fill", "must be zero or normal, got '\(other)'")
            }
        }
    }

    /// The first difference between two shapes, in words.
    static func shapeDifference(_ found: ModelShape, _ expected: ModelShape) -> String {
        if found.hidden != expected.hidden { return "hidden \(found.hidden), expected \(expected.hidden)" }
        if found.headDim != expected.headDim { return "head_dim \(found.headDim), expected \(expected.headDim)" }
        if found.vocab != expected.vocab { return "vocab \(found.vocab), expected \(expected.vocab)" }
        if found.layers.count != expected.layers.count { return "\(found.layers.count) layers, expected \(expected.layers.count)" }
        if let l = found.layers.indices.first(where: { found.layers[$0] != expected.layers[$0] }) {
            let f = found.layers[l], e = expected.layers[l]
            return "layer \(l) has \(f.heads) heads, \(f.kvHeads) kv heads, \(f.intermediate) neurons; expected \(e.heads), \(e.kvHeads), \(e.intermediate)"
        }
        return "tied embeddings \(found.tiedEmbeddings), expected \(expected.tiedEmbeddings)"
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
    static func layerReport(_ model: DecoderModel) -> JSONValue {
        .array(model.config.layers.enumerated().map { index, shape in
            .object([("layer", .int(Int64(index))), ("heads", .int(Int64(shape.heads))), ("kvHeads", .int(Int64(shape.kvHeads))),
                     ("neurons", .int(Int64(shape.intermediate))), ("pruned", .bool(model.pruning?.kept[index] != nil))])
        })
    }
}
