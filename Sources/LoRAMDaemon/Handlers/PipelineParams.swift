import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `loram/run`'s params: the parts of one request, each checked and named by its field.
extension Daemon {
    /// `align`: `true` (every default), or `train/create`'s fields without `modelId`, each optional:
    /// `dataset` (default: general text the machine has, `GeneralText`), `steps` (80), `lr` (1e-4),
    /// `seqLen` and `microBatch` (train's, else 256 and 4), `packing` (true),
    /// `schedule` (constant), `warmupSteps` (steps/10). loramd's own: `embeddings` for a tied model, `freeze`
    /// (default: the one tensor frozen with the head), `untie` (the input embedding trains as its
    /// own tensor, the head stays the original's) or `train` (the one tensor trained as both); `dtype` of the aligned carrier (default the
    /// carrier's own storage).
    struct AlignSettings {
        var fields: [(String, JSONValue)]
        var usesDefaultData: Bool
        var embeddings: String
        var dtype: String?
    }

    static let alignDefaults = (steps: 80, lr: 1e-4)

    static func alignParams(_ value: JSONValue?, train: [(String, JSONValue)]) throws -> AlignSettings? {
        var members: [(String, JSONValue)]
        switch value {
        case .none, .some(.null), .some(.bool(false)): return nil
        case .some(.bool(true)): members = []
        case .some(.object(let given)): members = given
        case .some(let other): throw RPCError.invalidParams(field: "align", "must be true or an object, got \(other.kindName)")
        }
        func take(_ key: String) -> JSONValue? {
            defer { members.removeAll { $0.0 == key } }
            return members.first { $0.0 == key }?.1
        }
        // Tied models: the tied tensor stays frozen by default (measured: training the input embedding
        // buys nothing at short budgets and costs V×h weights; docs/loram-decisions.md, "Alignment").
        let embeddings = take("embeddings")?.stringValue ?? "freeze"
        guard ["untie", "freeze", "train"].contains(embeddings) else {
            throw RPCError.invalidParams(field: "align.embeddings", "must be untie, freeze or train, got '\(embeddings)'")
        }
        let dtype = take("dtype")
        if let dtype, dtype.stringValue == nil || weightDTypes[dtype.stringValue!.lowercased()] == nil {
            throw RPCError.invalidParams(field: "align.dtype", "must be one of f32, bf16, f16")
        }
        _ = take("freeze")  // alignment's freeze is lm_head, always
        let trainValue = { (key: String) in train.first { $0.0 == key }?.1 }
        let steps = members.first { $0.0 == "steps" }?.1.intValue.map(Int.init) ?? alignDefaults.steps
        let defaults: [(String, JSONValue)] = [
            ("steps", .int(Int64(alignDefaults.steps))), ("lr", .double(alignDefaults.lr)),
            ("seqLen", trainValue("seqLen") ?? .int(256)), ("microBatch", trainValue("microBatch") ?? .int(4)),
            ("packing", .bool(true)), ("schedule", .string("constant")), ("warmupSteps", .int(Int64(max(0, steps / 10)))),
        ]
        let usesDefaultData = !members.contains { $0.0 == "dataset" }
        for (key, item) in defaults where !members.contains(where: { $0.0 == key }) { members.append((key, item)) }
        return AlignSettings(fields: members, usesDefaultData: usesDefaultData, embeddings: embeddings, dtype: dtype?.stringValue?.lowercased())
    }

    /// Where the carrier's distance is measured: `diagnostics` false turns it off; else
    /// `{dataset?, seqLen?, maxSamples?}`, by default 8 rows of min(128, train.seqLen) tokens of the
    /// training data.
    struct DiagnosticsSettings {
        var dataset: DatasetParam
        var seqLen: Int
        var maxSamples: Int
        /// The sample is `train.dataset`'s.
        var fromTrain: Bool
    }

    static func diagnosticsParams(_ value: JSONValue?, train: [(String, JSONValue)]) throws -> DiagnosticsSettings? {
        if case .bool(false)? = value { return nil }
        let object: JSONValue = (value?.isNull ?? true) || value == .bool(true) ? .object([]) : value!
        guard case .object = object else { throw RPCError.invalidParams(field: "diagnostics", "must be false or {dataset?, seqLen?, maxSamples?}") }
        let datasetValue = object["dataset"] ?? train.first { $0.0 == "dataset" }?.1
        guard let datasetValue, let path = datasetValue["path"]?.stringValue, let format = datasetValue["format"]?.stringValue else {
            // train/create reports a missing training dataset itself; without one there is nothing to measure on.
            return nil
        }
        let trainSeqLen = train.first { $0.0 == "seqLen" }?.1.intValue.map(Int.init) ?? compareDefaultSeqLen
        return DiagnosticsSettings(dataset: DatasetParam(path: path, format: format, trainOnInputs: datasetValue["trainOnInputs"]?.boolValue),
                                   seqLen: object["seqLen"]?.intValue.map(Int.init) ?? min(compareDefaultSeqLen, max(2, trainSeqLen)),
                                   maxSamples: object["maxSamples"]?.intValue.map(Int.init) ?? compareDefaultSamples,
                                   fromTrain: object["dataset"] == nil)
    }

    static func object(_ value: JSONValue, field: String) throws -> [(String, JSONValue)] {
        guard case .object(let members) = value else { throw RPCError.invalidParams(field: field, "must be an object, got \(value.kindName)") }
        return members
    }

    /// `quantize`: absent/null/false (none), `"nf4"`, `true`, or `{format, blockSize?, doubleQuant?}`.
    static func quantizeParams(_ value: JSONValue?) throws -> [(String, JSONValue)]? {
        switch value {
        case .none, .some(.null), .some(.bool(false)): return nil
        case .some(.bool(true)): return [("format", .string("nf4"))]
        case .some(.string(let format)): return [("format", .string(format))]
        case .some(.object(let members)): return members.contains { $0.0 == "format" } ? members : members + [("format", .string("nf4"))]
        case .some(let other): throw RPCError.invalidParams(field: "quantize", "must be \"nf4\" or an object, got \(other.kindName)")
        }
    }

    /// `train.lora`: adapter/create's params without modelId; the paper's r 8, alpha 16, dropout 0.05
    /// on the seven projections by default (lm_head is left out; see docs/loram-decisions.md).
    static func loraParams(_ value: JSONValue?) throws -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [("r", .int(8)), ("alpha", .double(16)), ("dropout", .double(0.05)),
                                             ("targets", .array(LoRATarget.decoder.map { .string($0.rawValue) }))]
        if let value, !value.isNull {
            for (key, item) in try object(value, field: "train.lora") {
                fields.removeAll { $0.0 == key }
                fields.append((key, item))
            }
        }
        return fields
    }

    struct EvalDataset {
        var dataset: JSONValue
        var seqLen: Int?
        var maxSamples: Int?
    }

    /// `eval`: a dataset, a list of them, or `{datasets, seqLen?, maxSamples?}`.
    static func evalDatasets(_ value: JSONValue?) throws -> [EvalDataset] {
        guard let value, !value.isNull else { return [] }
        switch value {
        case .array(let items): return items.map { EvalDataset(dataset: $0) }
        case .object where value["datasets"] != nil:
            guard case .array(let items)? = value["datasets"] else { throw RPCError.invalidParams(field: "eval.datasets", "must be a list of datasets") }
            let seqLen = value["seqLen"]?.intValue.map(Int.init), maxSamples = value["maxSamples"]?.intValue.map(Int.init)
            return items.map { EvalDataset(dataset: $0, seqLen: seqLen, maxSamples: maxSamples) }
        case .object: return [EvalDataset(dataset: value)]
        default: throw RPCError.invalidParams(field: "eval", "must be a dataset, a list of datasets, or {datasets, seqLen?, maxSamples?}")
        }
    }
}
