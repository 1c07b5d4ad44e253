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

    /// Every dataset file the request names exists (NotFound naming its field otherwise), checked
    /// before the original is loaded: a typo in eval's path must not cost the load and the training.
    static func requireDatasetFiles(_ params: LoramRunParams, train: [(String, JSONValue)]) throws {
        var named: [(String, JSONValue?)] = [("train.dataset", JSONValue.object(train)["dataset"]), ("train.evalDataset", JSONValue.object(train)["evalDataset"]),
                                             ("prune.calibration", params.prune?["calibration"]), ("align.dataset", params.align?["dataset"]),
                                             ("diagnostics.dataset", params.diagnostics?["dataset"])]
        for item in params.eval { named.append((item.field, item.dataset)) }
        for (field, dataset) in named {
            if let path = dataset?["path"]?.stringValue { _ = try PathParam.existingFile(path, field: "\(field).path") }
        }
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
        /// Where the request gave it (`eval`, `eval[1]`, `eval.datasets[0]`).
        var field = "eval"
    }
}

/// `loram/run`'s one decode: the top-level fields as typed, and every stage's part decoded by the
/// type its own method decodes (with the ids the pipeline fills in), so nothing ill-typed reaches
/// a stage that runs minutes later.
extension Daemon.LoramRunParams {
    enum CodingKeys: String, CodingKey {
        case path, dtype, prune, carrier, align, diagnostics, stopIfFar, quantize, train, recover, eval, outDir
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        path = try c.decode(String.self, forKey: .path)
        dtype = try c.decodeIfPresent(String.self, forKey: .dtype)
        stopIfFar = try c.decodeIfPresent(Bool.self, forKey: .stopIfFar)
        outDir = try c.decode(String.self, forKey: .outDir)
        train = try c.decode(JSONValue.self, forKey: .train)
        prune = try c.decodeIfPresent(JSONValue.self, forKey: .prune)
        carrier = try c.decodeIfPresent(JSONValue.self, forKey: .carrier)
        align = try c.decodeIfPresent(JSONValue.self, forKey: .align)
        diagnostics = try c.decodeIfPresent(JSONValue.self, forKey: .diagnostics)
        quantize = try c.decodeIfPresent(JSONValue.self, forKey: .quantize)
        recover = try c.decodeIfPresent(JSONValue.self, forKey: .recover)
        eval = try c.decodeIfPresent(EvalFields.self, forKey: .eval)?.datasets ?? []

        let at = { (key: CodingKeys) in decoder.codingPath + [key] }
        let id = JSONValue.string("")
        // Each stage's part as its own method decodes it (types and sizes), then the stage's rules
        // that need no model (values), stage by stage in the pipeline's order, so a bad value late
        // in the request is refused before the first stage runs and writes anything. The ids each
        // method needs are the pipeline's, never the caller's.
        if let prune {
            let request = try Self.check(Daemon.PruneParams.self, prune, at: at(.prune), owned: [("modelId", id)])
            try Self.within("prune") { _ = try request.checked() }
        }
        if let carrier { _ = try JSONValueDecoder.decode(CarrierParam.self, from: carrier, codingPath: at(.carrier)) }
        if let diagnostics, diagnostics != .bool(true), diagnostics != .bool(false) {
            _ = try JSONValueDecoder.decode(DiagnosticsFields.self, from: diagnostics, codingPath: at(.diagnostics))
        }
        guard case .object(let trainMembers) = train else { throw Self.mismatch(at(.train), "must be an object, got \(train.kindName)") }
        // Train's types before align's, which takes train's seqLen and microBatch as its defaults.
        let trainRequest = try Self.check(TrainingService.Request.self, train, at: at(.train), owned: [("modelId", id), ("adapterId", id)])
        if let align, case .object = align {
            _ = try JSONValueDecoder.decode(AlignOwnFields.self, from: align, codingPath: at(.align))
        }
        if let settings = try Daemon.alignParams(align, train: trainMembers) {
            // As the pipeline sends it: the defaults filled, the data the pipeline's own when none is given.
            let request = try Self.check(TrainingService.Request.self, .object(settings.fields), at: at(.align), owned: [("modelId", id)],
                                         defaults: [("dataset", .object([("path", id), ("format", .string("text"))]))])
            try Self.within("align") { _ = try TrainingService.settings(request) }
        }
        if let fields = try Daemon.quantizeParams(quantize) {
            let request = try Self.check(Daemon.QuantizeParams.self, .object(fields), at: at(.quantize), owned: [("modelId", id)])
            try Self.within("quantize") { _ = try request.checked() }
        }
        let lora = try Self.check(Daemon.AdapterCreateParams.self, .object(try Daemon.loraParams(train["lora"])),
                                  at: at(.train) + [Key("lora")], owned: [("modelId", id)])
        try Self.within("train.lora") { _ = try lora.checked() }
        try Self.within("train") { _ = try TrainingService.settings(trainRequest) }
        if let recover {
            let request = try Self.check(Daemon.RecoverParams.self, recover, at: at(.recover), owned: [("adapterId", id), ("targetModelId", id)])
            try Self.within("recover") { _ = try request.checkedFill() }
        }
    }

    static func within(_ prefix: String, _ body: () throws -> Void) throws {
        do { try body() } catch let error as RPCError { throw error.within(prefix) }
    }

    /// `value` must be an object that decodes as `P` once `defaults` fill its missing fields and
    /// `owned` replace the pipeline's.
    static func check<P: Decodable>(_ type: P.Type, _ value: JSONValue, at path: [CodingKey], owned: [(String, JSONValue)],
                                    defaults: [(String, JSONValue)] = []) throws -> P {
        guard case .object(let members) = value else { throw mismatch(path, "must be an object, got \(value.kindName)") }
        let filled = defaults.filter { d in !members.contains { $0.0 == d.0 } }
        // A repeated key keeps its last value: the owned ids win.
        return try JSONValueDecoder.decode(P.self, from: .object(filled + members + owned), codingPath: path)
    }

    static func mismatch(_ path: [CodingKey], _ problem: String) -> DecodingError {
        .typeMismatch(JSONValue.self, .init(codingPath: path, debugDescription: problem))
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    /// `carrier`: a saved carrier's folder, as a string or `{path, dtype?}`.
    struct CarrierParam: Decodable {
        var path: String
        var dtype: String?
        init(from decoder: Decoder) throws {
            if let path = try? decoder.singleValueContainer().decode(String.self) { self.path = path; return }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            path = try c.decode(String.self, forKey: .path)
            dtype = try c.decodeIfPresent(String.self, forKey: .dtype)
        }
        enum CodingKeys: String, CodingKey { case path, dtype }
    }

    /// Alignment's own fields beside train/create's.
    struct AlignOwnFields: Decodable {
        var embeddings: String?
        var dtype: String?
        /// Taken and ignored (alignment freezes lm_head), but it must still be a list of names.
        var freeze: [String]?
    }

    /// `diagnostics` as an object.
    struct DiagnosticsFields: Decodable {
        var dataset: DatasetParam?
        @SizeIfGiven<SizeBounds.SeqLen> var seqLen: Int?
        @SizeIfGiven<SizeBounds.Samples> var maxSamples: Int?
    }

    /// `eval`: a dataset, a list of them, or `{datasets, seqLen?, maxSamples?}`.
    struct EvalFields: Decodable {
        struct Group: Decodable {
            var datasets: [DatasetParam]
            @SizeIfGiven<SizeBounds.SeqLen> var seqLen: Int?
            @SizeIfGiven<SizeBounds.Samples> var maxSamples: Int?
        }
        let datasets: [Daemon.EvalDataset]

        init(from decoder: Decoder) throws {
            if (try? decoder.unkeyedContainer()) != nil {
                datasets = try [DatasetParam](from: decoder).enumerated().map { .init(dataset: $1.json, field: "eval[\($0)]") }
            } else if let c = try? decoder.container(keyedBy: Key.self), c.contains(Key("datasets")) {
                let group = try Group(from: decoder)
                datasets = group.datasets.enumerated().map {
                    .init(dataset: $1.json, seqLen: group.seqLen, maxSamples: group.maxSamples, field: "eval.datasets[\($0)]")
                }
            } else {
                datasets = [.init(dataset: try DatasetParam(from: decoder).json)]
            }
        }
    }
}
