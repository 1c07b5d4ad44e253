import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `model/prune`: LoRAM's first step. Pruning makes a new model (the carrier) beside the
/// original, which stays loaded, and charges the memory budget before building it.
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
        router.register("model/prune") { [unowned self] (params: PruneParams, context) -> JSONValue in
            let loaded = try model(params.modelId)
            let methods = PruningMethod.allCases.map(\.rawValue).joined(separator: ", ")
            guard let method = PruningMethod(rawValue: params.method) else {
                throw RPCError.invalidParams(field: "method", "must be one of \(methods), got '\(params.method)'")
            }
            if let existing = loaded.model.pruning {
                throw RPCError.invalidParams(field: "modelId", "is already a pruned model (\(existing.method.rawValue)); prune the original")
            }
            let ratio = try Self.pruneRatio(params, method: method)
            let window = try Self.pruneWindow(params, method: method)
            if method == .taylor, params.calibration == nil {
                throw RPCError.invalidParams(field: "calibration", "is required for taylor: its gradients score the heads and neurons")
            }
            if method != .taylor, params.calibration != nil || params.seqLen != nil {
                throw RPCError.invalidParams(field: params.calibration != nil ? "calibration" : "seqLen", "applies to taylor only")
            }
            if method != .random, params.seed != nil { throw RPCError.invalidParams(field: "seed", "applies to random only") }
            let seqLen = params.seqLen ?? Self.defaultCalibrationSeqLen
            guard seqLen >= 2 else { throw RPCError.invalidParams(field: "seqLen", "must be at least 2, got \(seqLen)") }
            // Taylor's scratch (the fp32 copy, its gradients, the step's activations) is planned
            // before anything is read or charged: a seqLen past the limits is refused here.
            let scratchBytes: Int
            do {
                scratchBytes = method == .taylor ? try TaylorCalibration.plannedBytes(config: loaded.model.config, seqLen: seqLen) : 0
            } catch let error as SizeError {
                throw ErrorMapping.invalidParams(error, overflowField: "seqLen")
            }

            let original = loaded.model
            let accounting: ParameterAccounting
            let bytes: Int
            do {
                accounting = try ParameterAccounting(original.config.modelShape, pruning: method.pruning(ratio: ratio, layers: window))
                bytes = method.isStructured ? try StructuredPruner.plannedBytes(original, ratio: ratio, layers: window)
                    : SparsityPruner.plannedBytes(original)
            } catch let error as PruningError {
                throw Self.invalidParams(error)
            }
            let examples = try params.calibration.map { param -> [Dataset.Example] in
                let examples = try readDataset(param, field: "calibration", model: loaded).sequences(seqLen: seqLen)
                // Gradients of a set with no labelled token are all zero: every score would tie.
                if let problem = DataLoader.problem(examples: examples, mode: .truncate, seqLen: seqLen) {
                    throw RPCError.invalidParams(field: "calibration", problem)
                }
                return examples
            }

            let handle = registry.newHandle(.model)
            try ledger.charge(Int64(bytes), to: handle, breakdown: .object([("weights", .int(Int64(bytes)))]))
            do {
                let pruned: LlamaModel
                var calibrationReport: JSONValue = .null
                switch method {
                // Long work checks for cancellation between layers (and calibration batches); a
                // cancelled prune leaves nothing registered and its charges released (below).
                case .random: pruned = try StructuredPruner.prune(original, ratio: ratio, layers: window, importance: .random(seed: params.seed ?? 0),
                                                                  checkpoint: context.checkCancelled)
                case .l2: pruned = try StructuredPruner.prune(original, ratio: ratio, layers: window, importance: .l2, checkpoint: context.checkCancelled)
                case .taylor:
                    // The fp32 copy, its gradients and the step's activations live only while scoring.
                    let scratch = "\(handle).calibration"
                    try ledger.charge(Int64(scratchBytes), to: scratch, breakdown: .object([("calibration", .int(Int64(scratchBytes)))]))
                    defer { ledger.release(scratch) }
                    try context.checkCancelled()
                    let calibration = try TaylorCalibration(model: original, examples: examples ?? [], seqLen: seqLen,
                                                            checkpoint: context.checkCancelled)
                    calibrationReport = .object([("loss", .double(calibration.loss)), ("tokens", .int(Int64(calibration.tokens)))])
                    pruned = try StructuredPruner.prune(original, ratio: ratio, layers: window, importance: .taylor(calibration),
                                                        checkpoint: context.checkCancelled)
                case .semi, .magnitude: pruned = try SparsityPruner.prune(original, method: method, ratio: ratio, checkpoint: context.checkCancelled)
                }
                try context.checkCancelled()
                let object = loaded.derived(handle: handle, model: pruned, bytes: bytes)
                registry.insert(object, as: .model)
                var result: [(String, JSONValue)] = [
                    ("modelId", .string(handle)), ("method", .string(method.rawValue)), ("ratio", .double(ratio)),
                    ("parameters", .int(Int64(pruned.parameterCount))),
                    ("paperParameters", .object([("original", .int(Int64(accounting.original))), ("carrier", .int(Int64(accounting.pruned)))])),
                    ("reduction", .double(accounting.loramReduction)), ("bytes", .int(Int64(bytes))),
                    ("layers", Self.layerReport(pruned)), ("config", object.configSummary),
                ]
                if method == .taylor { result.append(("calibration", calibrationReport)) }
                return .object(result)
            } catch {
                ledger.release(handle)
                throw ErrorMapping.rpc(error)
            }
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
            .object([("layer", .int(Int64(index))), ("heads", .int(Int64(shape.heads))), ("kvHeads", .int(Int64(shape.kvHeads))),
                     ("neurons", .int(Int64(shape.intermediate))), ("pruned", .bool(model.pruning?.kept[index] != nil))])
        })
    }
}
