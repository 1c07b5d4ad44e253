import Foundation
import MemoryPlanner
import RPC
import Runtime

/// LoRAM's carrier and its way back: `model/prune` (a smaller model beside the original),
/// `model/quantize` (its decoder linears in NF4) and `adapter/recover` (an adapter trained on the
/// carrier, on the original's shapes). Each new object's bytes are charged before it is built and
/// released if building fails or is cancelled.
struct PruningService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    func prune(_ params: Daemon.PruneParams, context: RequestContext) throws -> PruneResult {
        let loaded = try registry.model(params.modelId)
        let (method, ratio, window, seqLen) = try params.checked()
        if let existing = loaded.model.pruning {
            throw RPCError.invalidParams(field: "modelId", "is already a pruned model (\(existing.method.rawValue)); prune the original")
        }
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
            throw Daemon.invalidParams(error)
        }
        let examples = try params.calibration.map { param -> [Dataset.Example] in
            let examples = try DatasetReader.read(param, field: "calibration", model: loaded).sequences(seqLen: seqLen)
            // Gradients of a set with no labelled token are all zero: every score would tie.
            if let problem = DataLoader.problem(examples: examples, mode: .truncate, seqLen: seqLen) {
                throw RPCError.invalidParams(field: "calibration", problem)
            }
            return examples
        }

        let handle = registry.newHandle(.model)
        try ledger.charge(Int64(bytes), to: handle, breakdown: .object([("weights", .int(Int64(bytes)))]))
        do {
            let pruned: DecoderModel
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
            return PruneResult(modelId: handle, method: method.rawValue, ratio: ratio, parameters: pruned.parameterCount,
                               paperParameters: .init(original: accounting.original, carrier: accounting.pruned),
                               reduction: accounting.loramReduction, bytes: bytes, layers: Daemon.layerReport(pruned),
                               config: object.configSummary, calibration: method == .taylor ? calibrationReport : nil)
        } catch {
            ledger.release(handle)
            throw ErrorMapping.rpc(error)
        }
    }

    func quantize(_ params: Daemon.QuantizeParams, context: RequestContext) throws -> Daemon.QuantizeResult {
        let loaded = try registry.model(params.modelId)
        let (blockSize, doubleQuant) = try params.checked()
        guard !loaded.model.isQuantized else {
            throw RPCError.invalidParams(field: "modelId", "model \(params.modelId) is already NF4")
        }
        let bytes = loaded.model.quantizedByteCount(blockSize: blockSize, doubleQuant: doubleQuant)
        let handle = registry.newHandle(.model)
        try ledger.charge(Int64(bytes), to: handle, breakdown: .object([("weights", .int(Int64(bytes)))]))
        do {
            try context.checkCancelled()
            let quantized: DecoderModel
            do {
                // Cancellable between tensors; a cancelled quantize registers nothing and releases its charge.
                quantized = try loaded.model.quantized(blockSize: blockSize, doubleQuant: doubleQuant, checkpoint: context.checkCancelled)
            } catch let error as QuantizationError {
                throw RPCError.invalidParams(field: error.field == "weights" ? "modelId" : error.field, error.problem)
            }
            let result = loaded.derived(handle: handle, model: quantized, bytes: quantized.byteCount)
            registry.insert(result, as: .model)
            return Daemon.QuantizeResult(modelId: handle, bytes: result.bytes, parameters: quantized.parameterCount,
                                  bytesPerParameter: Double(result.bytes) / Double(quantized.parameterCount))
        } catch {
            ledger.release(handle)
            throw error
        }
    }

    func recover(_ params: Daemon.RecoverParams) throws -> RecoveredAdapterResult {
        let object = try registry.loadedAdapter(params.adapterId)
        let carrier = try registry.model(object.modelId, field: "adapterId")
        guard let manifest = carrier.model.pruning else {
            throw RPCError.invalidParams(field: "adapterId", "belongs to \(carrier.handle), which is not a pruned model; recover adapters trained on a 'model/prune' result")
        }
        let target = try registry.model(params.targetModelId, field: "targetModelId")
        let fill = try params.checkedFill()
        let expected = manifest.originalConfig(of: carrier.model.config).modelShape
        guard target.model.config.modelShape == expected else {
            throw RPCError.invalidParams(field: "targetModelId", "\(target.handle) does not have the shapes \(carrier.handle) was pruned from: \(Daemon.shapeDifference(target.model.config.modelShape, expected))",
                                         hint: "Recover onto the original model the carrier was pruned from (load it with 'model/load').")
        }
        let adapter = object.adapter
        let handle = registry.newHandle(.adapter)
        let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: target.model.config, rank: adapter.rank, targets: adapter.targets))
        return try ledger.charged(bytes, to: handle, kind: "adapter") {
            let recovered: LoRAAdapter
            do {
                // A training job may be updating the adapter; read one consistent state.
                recovered = try adapter.access.reading {
                    try LoRARecovery.recover(adapter: adapter, manifest: manifest, target: target.model.config, fill: fill)
                }
            } catch let failure as LoRARecovery.Failure {
                switch failure {
                case .targetMismatch: throw RPCError.invalidParams(field: "targetModelId", failure.description)
                case .adapterMismatch: throw RPCError.invalidParams(field: "adapterId", failure.description)
                }
            }
            let result = LoadedAdapter(handle: handle, modelId: target.handle, adapter: recovered, path: nil, baseModelPath: target.source.path)
            try registry.insert(result, as: .adapter, whileModelLives: target.handle)
            return RecoveredAdapterResult(result.summary, recoveredFrom: object.handle, fill: params.fill ?? "zero")
        }
    }
}

struct PruneResult: WireResult {
    var modelId: String
    var method: String
    var ratio: Double
    var parameters: Int
    var paperParameters: ParameterCounts
    var reduction: Double
    var bytes: Int
    var layers: JSONValue
    var config: JSONValue
    /// Taylor's only (absent for the other methods): the calibration's loss and tokens.
    var calibration: JSONValue?

    private enum CodingKeys: String, CodingKey { case modelId, method, ratio, parameters, paperParameters, reduction, bytes, layers, config, calibration }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelId, forKey: .modelId)
        try c.encode(method, forKey: .method)
        try c.encode(ratio, forKey: .ratio)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(paperParameters, forKey: .paperParameters)
        try c.encode(reduction, forKey: .reduction)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(layers, forKey: .layers)
        try c.encode(config, forKey: .config)
        if let calibration { try c.encode(calibration, forKey: .calibration) }
    }
}

/// adapter/recover's answer: the new adapter as adapter/create answers it, and where it came from.
struct RecoveredAdapterResult: WireResult {
    var adapter: AdapterSummary
    var recoveredFrom: String
    var fill: String

    init(_ adapter: AdapterSummary, recoveredFrom: String, fill: String) {
        self.adapter = adapter
        self.recoveredFrom = recoveredFrom
        self.fill = fill
    }

    private enum CodingKeys: String, CodingKey { case recoveredFrom, fill }

    func encode(to encoder: Encoder) throws {
        try adapter.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(recoveredFrom, forKey: .recoveredFrom)
        try c.encode(fill, forKey: .fill)
    }
}
