import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Planning (`memory/plan`): the exact peak of a training step or a generation on any model (a
/// loaded one, a config.json, a preset, an inline config), its placement, and the change that
/// would fit a cap (`PlanSearch`). A dry run: nothing is loaded or allocated.
struct PlanningService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    func plan(_ params: PlanParams) throws -> PlanResult {
        let original = try planShape(params.model)
        let (workload, pruning) = try Self.planWorkload(params.workload)
        let paper: Bool
        switch params.accounting ?? "full" {
        case "full": paper = false
        case "paper": paper = true
        case let other: throw RPCError.invalidParams(field: "accounting", "must be full or paper, got '\(other)'")
        }
        if let cap = params.hbmCapBytes, cap <= 0 { throw RPCError.invalidParams(field: "hbmCapBytes", "must be positive") }
        let cap = params.hbmCapBytes ?? ledger.capBytes
        let plan: MemoryPlan
        do {
            plan = try Self.planSizes { try MemoryPlan(original: original, pruning: pruning, workload: workload, libraries: BLAS.threadedCallHeapBytes) }
        } catch let error as PruningError {
            throw RPCError.invalidParams(field: "workload.prune", "\(error)")
        }
        let accounting = plan.accounting
        let peak = paper ? plan.paperBytes : plan.peakBytes
        var result = PlanResult(fits: Int64(peak) <= cap, peakBytes: peak, lowerBoundBytes: paper ? peak : plan.lowerBoundBytes, capBytes: cap,
                                breakdown: paper ? Self.breakdownJSON([.weight: peak]) : Self.breakdownJSON(plan.breakdown),
                                parameters: .init(original: accounting.original, carrier: accounting.pruned),
                                reduction: workload.baseDType == .nf4 ? accounting.qloramReduction : accounting.loramReduction,
                                accounting: paper ? "paper" : "full", peakOverLowerBound: plan.placement.ratio)
        result.allocatedPeakBytes = paper ? nil : plan.allocatedPeakBytes
        if params.search == true && Int64(peak) > cap && !paper {
            if let suggestion = PlanSearch.fit(original: original, pruning: pruning, workload: workload, capBytes: Int(cap)) {
                result.suggestion = .object([
                    ("changes", .object(suggestion.changes.map { ($0.0, .string($0.1)) })),
                    ("peakBytes", .int(Int64(suggestion.plan.peakBytes))),
                    ("breakdown", Self.breakdownJSON(suggestion.plan.breakdown)),
                ])
            } else {
                result.suggestion = .null
            }
        }
        // Every phase the pipeline runs: Taylor pruning first (on the original model), then the workload.
        var phases: [JSONValue] = []
        if let prune = params.workload.prune, prune.method == "taylor" {
            let seqLen = prune.calibrationSeqLen ?? ImportancePlan.defaultSeqLen
            guard seqLen >= 2 else { throw RPCError.invalidParams(field: "workload.prune.calibrationSeqLen", "must be at least 2") }
            let importance = try Self.planSizes(field: { $0 == "seqLen" ? "workload.prune.calibrationSeqLen" : "workload.\($0)" }) {
                try ImportancePlan(original: original, seqLen: seqLen, checkpointing: workload.checkpointing)
            }
            phases.append(.object([("phase", .string("prune")), ("method", .string("taylor")), ("seqLen", .int(Int64(seqLen))),
                                   ("fits", .bool(Int64(importance.peakBytes) <= cap)), ("peakBytes", .int(Int64(importance.peakBytes))),
                                   ("breakdown", Self.breakdownJSON(importance.breakdown))]))
        }
        phases.append(.object([("phase", .string(workload.kind.rawValue)), ("fits", .bool(Int64(peak) <= cap)),
                               ("peakBytes", .int(Int64(peak)))]))
        result.phases = phases
        if params.detail == true && !paper {
            result.buffers = plan.placement.placements.map { b in
                .object([("name", .string(b.name)), ("kind", .string(b.kind.rawValue)), ("bytes", .int(Int64(b.bytes))),
                         ("offset", .int(Int64(b.offset))), ("start", .int(Int64(b.lifetime.start))), ("end", .int(Int64(b.lifetime.end))),
                         ("persistent", .bool(b.persistent))])
            }
            result.liveAtPeak = plan.placement.liveAtPeak.map(\.name)
        }
        if params.svg == true && !paper {
            result.svg = PlanPicture.svg(plan.placement)
        }
        return result
    }

    /// The shape `model` names: {modelId} / "modelId", {path} of a config.json, its directory or a
    /// GGUF file (its header only: no tensor data is read), {preset}, or {config} inline.
    func planShape(_ model: PlanModel) throws -> ModelShape {
        func shape(json data: Data, file: String) throws -> ModelShape {
            // The one config parser model/load uses: a family it refuses is refused here too.
            do { return try ModelConfig(json: data).modelShape } catch let error as FormatError {
                throw RPCError(.formatError, "Format error: \(file): \(error.problem)",
                               hint: "Give the config.json of a supported family (\(ModelRegistry.supportedNames)).",
                               data: [("file", .string(file)), ("problem", .string(error.problem))])
            }
        }
        if let id = model.modelId {
            return try registry.model(id, field: "model.modelId").model.config.modelShape
        }
        if let name = model.preset {
            guard let preset = try ErrorMapping.translating({ try ModelRegistry.presetShape(named: name) }) else {
                throw RPCError.invalidParams(field: "model.preset", "unknown preset '\(name)'; known: \(ModelRegistry.presetNames.joined(separator: ", "))")
            }
            return preset
        }
        if let path = model.path {
            var url = try PathParam.existingFile(path, field: "model.path")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                url = url.appendingPathComponent("config.json")
            } else if GGUFFile.hasMagic(url) {
                return try ErrorMapping.translating { try DecoderModel.config(gguf: try GGUFFile(url: url)).modelShape }
            }
            guard let data = FileManager.default.contents(atPath: url.path) else {
                throw RPCError(.notFound, "Not found: \(url.path)", hint: "Check 'model.path'.", data: [("field", .string("model.path"))])
            }
            return try shape(json: data, file: url.lastPathComponent)
        }
        if let config = model.config {
            return try shape(json: Data(config.serialized()), file: "config")
        }
        throw RPCError.invalidParams(field: "model", "must be a modelId, {modelId}, {path}, {preset} or {config}")
    }

    static func planWorkload(_ p: WorkloadParam) throws -> (Workload, Pruning?) {
        guard let kind = Workload.Kind(rawValue: p.kind) else { throw RPCError.invalidParams(field: "workload.kind", "must be train or generate") }
        guard p.seqLen >= 1 else { throw RPCError.invalidParams(field: "workload.seqLen", "must be at least 1") }
        let microBatch = p.microBatch ?? 1
        guard microBatch >= 1 else { throw RPCError.invalidParams(field: "workload.microBatch", "must be at least 1") }
        if let a = p.baseDtype, let b = p.baseDType, a != b {
            throw RPCError.invalidParams(field: "workload.baseDtype", "and workload.baseDType disagree ('\(a)', '\(b)'); send baseDtype only")
        }
        let base = try (p.baseDtype ?? p.baseDType).map { name -> Workload.BaseDType in
            guard let dtype = Workload.BaseDType(rawValue: name) else { throw RPCError.invalidParams(field: "workload.baseDtype", "must be f32, bf16, f16 or nf4") }
            return dtype
        } ?? .bf16
        var lora: Workload.LoRA?
        if let l = p.lora {
            guard l.r >= 1 else { throw RPCError.invalidParams(field: "workload.lora.r", "must be at least 1") }
            let targets = try (l.targets ?? LoRATarget.decoder.map(\.rawValue)).enumerated().map { index, name -> LoRATarget in
                guard let target = LoRATarget(rawValue: name) else { throw RPCError.invalidParams(field: "workload.lora.targets[\(index)]", "unknown target '\(name)'") }
                return target
            }
            lora = Workload.LoRA(r: l.r, targets: Set(targets))
        }
        let checkpointing: Bool
        switch p.checkpointing {
        case .none, .some(.null), .some(.bool(false)), .some(.string("none")): checkpointing = false
        case .some(.bool(true)), .some(.string("layer")): checkpointing = true
        default: throw RPCError.invalidParams(field: "workload.checkpointing", "must be none, layer, true or false")
        }
        let activations = try ActivationDTypeParam.parse(p.activationDtype, field: "workload.activationDtype")
        if let optimizer = p.optimizer, optimizer != "adamw" { throw RPCError.invalidParams(field: "workload.optimizer", "only adamw is planned") }
        var pruning: Pruning?
        if let prune = p.prune {
            switch prune.method {
            case "random", "l2", "taylor", "structured":
                var layers: Range<Int>?
                if let l = prune.layers {
                    guard l.count == 2, l[0] < l[1] else { throw RPCError.invalidParams(field: "workload.prune.layers", "must be [start, end) with start < end") }
                    layers = l[0]..<l[1]
                }
                pruning = .structured(ratio: prune.ratio, layers: layers)
            case "semi": pruning = .semiStructured(zeros: 2, group: 4)
            case "magnitude", "unstructured": pruning = .unstructured(sparsity: prune.ratio)
            default: throw RPCError.invalidParams(field: "workload.prune.method", "must be random, l2, taylor, semi or magnitude")
            }
        }
        let workload = Workload(kind: kind, microBatch: microBatch, seqLen: p.seqLen, gradAccum: p.gradAccum ?? 1, lora: lora,
                                baseDType: base, checkpointing: checkpointing, activationDType: activations, newTokens: p.newTokens ?? 0)
        try planSizes { try workload.checkSizes() }
        return (workload, pruning)
    }

    /// `body` with its SizeError as InvalidParams: a workload setting past its limit names itself
    /// (`workload.seqLen`), sizes that overflow only together name `workload`.
    static func planSizes<T>(field: (String) -> String = { "workload.\($0)" }, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as SizeError {
            throw ErrorMapping.invalidParams(error, overflowField: "workload", field: field)
        }
    }

    static func breakdownJSON(_ breakdown: [BufferKind: Int]) -> JSONValue {
        let names: [(BufferKind, String)] = [(.weight, "weights"), (.adapter, "adapter"), (.gradient, "gradients"), (.optimizer, "optimizer"),
                                             (.activation, "activations"), (.kvCache, "kvCache"), (.workspace, "workspace")]
        return .object(names.map { ($0.1, .int(Int64(breakdown[$0.0] ?? 0))) })
    }

}

extension PlanningService {
    struct PlanParams: Decodable {
        var model: PlanModel
        var workload: WorkloadParam
        var hbmCapBytes: Int64?
        var search: Bool?
        var accounting: String?
        var detail: Bool?
        /// loramd's own: the arena's picture as SVG (what `loramd plan --svg` writes).
        var svg: Bool?
    }

    /// `model`: a modelId, or one of {modelId}, {path}, {preset}, {config}, each field typed.
    struct PlanModel: Decodable {
        var modelId: String?
        var path: String?
        var preset: String?
        /// A config.json's object, inline.
        var config: JSONValue?

        enum CodingKeys: String, CodingKey { case modelId, path, preset, config }

        init(from decoder: Decoder) throws {
            if let id = try? decoder.singleValueContainer().decode(String.self) { modelId = id; return }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            modelId = try c.decodeIfPresent(String.self, forKey: .modelId)
            path = try c.decodeIfPresent(String.self, forKey: .path)
            preset = try c.decodeIfPresent(String.self, forKey: .preset)
            config = try c.decodeIfPresent(JSONValue.self, forKey: .config)
            if let config {
                guard case .object = config else {
                    throw DecodingError.typeMismatch(JSONValue.self, .init(codingPath: c.codingPath + [CodingKeys.config],
                                                                           debugDescription: "must be a config.json object, got \(config.kindName)"))
                }
            }
        }
    }

    struct WorkloadParam: Decodable {
        struct LoRAParam: Decodable { @Size<SizeBounds.Rank> var r: Int; var targets: [String]? }
        struct PruneParam: Decodable { var method: String; var ratio: Double; var layers: [Int]?; @SizeIfGiven<SizeBounds.SeqLen> var calibrationSeqLen: Int? }
        var kind: String
        @SizeIfGiven<SizeBounds.MicroBatch> var microBatch: Int?
        @Size<SizeBounds.SeqLen> var seqLen: Int
        @SizeIfGiven<SizeBounds.GradAccum> var gradAccum: Int?
        @SizeIfGiven<SizeBounds.TokenCount> var newTokens: Int?
        var lora: LoRAParam?
        /// The contract's spelling; `baseDType` (loramd 0.4's first spelling) is accepted too.
        var baseDtype: String?
        var baseDType: String?
        var prune: PruneParam?
        var checkpointing: JSONValue?
        /// `f32` (default) or `bf16` (training): how each layer's activations are kept.
        var activationDtype: String?
        var optimizer: String?
    }

}

/// memory/plan's answer; `suggestion` (with search, over the cap), `buffers` and `liveAtPeak`
/// (with detail) and `svg` (with svg) are there only when asked for.
/// Parameters of the original model and of its (pruned) carrier, as memory/plan and model/prune count them.
struct ParameterCounts: WireResult { var original: Int; var carrier: Int }

struct PlanResult: WireResult {
    var fits: Bool
    var peakBytes: Int
    var lowerBoundBytes: Int
    var capBytes: Int64
    var breakdown: JSONValue
    var parameters: ParameterCounts
    var reduction: Double
    var accounting: String
    var peakOverLowerBound: Double
    /// Set (perhaps to null: nothing fits) when a search was asked for and ran.
    var suggestion: JSONValue?
    var phases: [JSONValue] = []
    var buffers: [JSONValue]?
    var liveAtPeak: [String]?
    var svg: String?
    /// The peak as jemalloc will count it (`MemoryPlan.allocatedPeakBytes`): size classes, the
    /// runtime's own buffers and bounds; training's rows are train/create's to add.
    var allocatedPeakBytes: Int?

    init(fits: Bool, peakBytes: Int, lowerBoundBytes: Int, capBytes: Int64, breakdown: JSONValue, parameters: ParameterCounts, reduction: Double,
         accounting: String, peakOverLowerBound: Double) {
        (self.fits, self.peakBytes, self.lowerBoundBytes, self.capBytes, self.breakdown) = (fits, peakBytes, lowerBoundBytes, capBytes, breakdown)
        (self.parameters, self.reduction, self.accounting, self.peakOverLowerBound) = (parameters, reduction, accounting, peakOverLowerBound)
    }

    private enum CodingKeys: String, CodingKey {
        case fits, peakBytes, lowerBoundBytes, capBytes, breakdown, parameters, reduction, accounting, peakOverLowerBound, suggestion, phases, buffers, liveAtPeak, svg
        case allocatedPeakBytes
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(fits, forKey: .fits)
        try c.encode(peakBytes, forKey: .peakBytes)
        try c.encodeIfPresent(allocatedPeakBytes, forKey: .allocatedPeakBytes)
        try c.encode(lowerBoundBytes, forKey: .lowerBoundBytes)
        try c.encode(capBytes, forKey: .capBytes)
        try c.encode(breakdown, forKey: .breakdown)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(reduction, forKey: .reduction)
        try c.encode(accounting, forKey: .accounting)
        try c.encode(peakOverLowerBound, forKey: .peakOverLowerBound)
        if let suggestion { try c.encode(suggestion, forKey: .suggestion) }
        try c.encode(phases, forKey: .phases)
        if let buffers { try c.encode(buffers, forKey: .buffers) }
        if let liveAtPeak { try c.encode(liveAtPeak, forKey: .liveAtPeak) }
        if let svg { try c.encode(svg, forKey: .svg) }
    }
}
