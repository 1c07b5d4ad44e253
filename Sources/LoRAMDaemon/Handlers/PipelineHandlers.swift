import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `loram/run`: the whole LoRAM pipeline in one request: load the original, prune it, align the
/// carrier (optional), quantize it (optional), train LoRA on it, recover the adapter to the
/// original's shapes, evaluate, and write everything to `outDir`.
///
/// Every stage is one of the daemon's own methods, called in-process (`Router.call`), so each
/// validates, charges the budget and fails exactly as it does alone; a failing stage's error
/// carries `data.stage`, and a field it names is prefixed with the stage's part of the params
/// (`train.dataset.path`). On failure everything the pipeline made is unloaded again.
extension Daemon {
    struct LoramRunParams: Decodable {
        var path: String
        var dtype: String?
        var prune: JSONValue
        var align: JSONValue?
        var quantize: JSONValue?
        var train: JSONValue
        var recover: JSONValue?
        var eval: JSONValue?
        var outDir: String
    }

    /// What the pipeline has made so far, unloaded in reverse if it fails.
    final class PipelineObjects {
        var models: [String] = []
        var adapters: [String] = []
        var jobs: [String] = []
    }

    func registerPipeline() {
        router.register("loram/run") { [unowned self] (params: LoramRunParams, context) -> JSONValue in
            let made = PipelineObjects()
            do {
                return try runPipeline(params, context: context, made: made)
            } catch {
                let quiet = context.withoutProgress()
                for job in made.jobs.reversed() { _ = try? router.call("train/close", .object([("jobId", .string(job))]), context: quiet) }
                for adapter in made.adapters.reversed() { _ = try? router.call("adapter/unload", .object([("adapterId", .string(adapter))]), context: quiet) }
                for model in made.models.reversed() { _ = try? router.call("model/unload", .object([("modelId", .string(model))]), context: quiet) }
                throw error
            }
        }
    }

    // MARK: - The pipeline

    private func runPipeline(_ params: LoramRunParams, context: RequestContext, made: PipelineObjects) throws -> JSONValue {
        let quiet = context.withoutProgress()
        let outDir = PathParam.url(params.outDir)
        var timings: [(String, JSONValue)] = []
        var stageStart = Date()
        // Percent of the whole each stage ends at; training fills its share step by step.
        let align = try params.align.map { try Self.object($0, field: "align") }
        let quantize = try Self.quantizeParams(params.quantize)
        let train = try Self.object(params.train, field: "train")
        let plannedStages = ["load", "prune"] + (align != nil ? ["align"] : []) + (quantize != nil ? ["quantize"] : [])
            + ["train", "recover", "evaluate", "save"]
        var stageIndex = 0
        /// The share of the whole a stage's own progress (0…1) maps to.
        func overall(_ fraction: Double) -> Double {
            100 * (Double(stageIndex - 1) + min(1, max(0, fraction))) / Double(plannedStages.count)
        }
        func begin(_ stage: String, _ message: String) throws {
            try context.checkCancelled()
            timings.append((plannedStages[max(0, stageIndex - 1)], .double(Date().timeIntervalSince(stageStart))))
            stageStart = Date()
            context.progress?.report(message: message, percentage: 100 * Double(stageIndex) / Double(plannedStages.count),
                                     fields: [("stage", .string(stage))])
            stageIndex += 1
        }
        func stage<T>(_ name: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as RPCError {
                var tagged = error.with("stage", .string(name))
                if let field = error.dataValue["field"]?.stringValue, ["train", "align", "prune", "eval", "recover", "quantize"].contains(name) {
                    tagged = tagged.with("field", .string("\(name).\(field)"))
                }
                throw tagged
            }
        }
        func call(_ method: String, _ fields: [(String, JSONValue)]) throws -> JSONValue {
            try router.call(method, .object(fields), context: quiet)
        }
        func string(_ value: JSONValue?, _ what: String) throws -> String {
            guard let text = value?.stringValue else { throw RPCError.internalError("\(what) answered without an id") }
            return text
        }

        // 1. The original model.
        timings.removeAll()
        context.progress?.report(message: "loading \(params.path)", percentage: 0, fields: [("stage", .string("load"))])
        stageIndex = 1
        var loadFields: [(String, JSONValue)] = [("path", .string(params.path))]
        if let dtype = params.dtype { loadFields.append(("dtype", .string(dtype))) }
        let originalId = try stage("load") { try string(try call("model/load", loadFields)["modelId"], "model/load") }
        made.models.append(originalId)
        let original = try model(originalId)

        // 2. Prune: the carrier.
        try begin("prune", "pruning")
        let pruneParams = try Self.object(params.prune, field: "prune")
        let pruned = try stage("prune") { try call("model/prune", [("modelId", .string(originalId))] + pruneParams) }
        var carrierId = try string(pruned["modelId"], "model/prune")
        made.models.append(carrierId)

        // 3. Align: full-parameter training of the carrier, lm_head frozen; its weights become the carrier.
        var alignLosses: [Double]?
        if let align {
            try begin("align", "aligning the pruned model")
            var fields = align.filter { $0.0 != "freeze" }
            fields.append(("freeze", .array([.string("lm_head")])))
            let created = try stage("align") { try call("train/create", [("modelId", .string(carrierId))] + fields) }
            let jobId = try string(created["jobId"], "train/create")
            made.jobs.append(jobId)
            let losses = try runSteps(jobId, context: context, stageName: "align", percentage: overall, call: call)
            made.jobs.removeAll { $0 == jobId }
            let aligned = try stage("align") { try call("train/close", [("jobId", .string(jobId)), ("keepModel", .bool(true))]) }
            let alignedId = try string(aligned["modelId"], "train/close")
            made.models.append(alignedId)
            _ = try call("model/unload", [("modelId", .string(carrierId))])
            made.models.removeAll { $0 == carrierId }
            carrierId = alignedId
            alignLosses = losses
        }
        // The (aligned) carrier is a publisher's artefact: saved now, in its own precision.
        let carrierDirectory = outDir.appendingPathComponent("carrier")
        _ = try stage("save") { try call("model/save", [("modelId", .string(carrierId)), ("path", .string(carrierDirectory.path))]) }

        // 4. Quantize the frozen carrier to NF4 (QLoRAM); training needs only the quantized copy.
        if let quantize {
            try begin("quantize", "quantizing the carrier to NF4")
            let quantized = try stage("quantize") { try call("model/quantize", [("modelId", .string(carrierId))] + quantize) }
            let unquantized = carrierId
            carrierId = try string(quantized["modelId"], "model/quantize")
            made.models.append(carrierId)
            _ = try call("model/unload", [("modelId", .string(unquantized))])
            made.models.removeAll { $0 == unquantized }
        }

        // 5. LoRA on the carrier.
        try begin("train", "training LoRA on the carrier")
        let lora = try Self.loraParams(JSONValue.object(train)["lora"])
        let beforeAdapter = Jemalloc.allocatedBytes ?? 0
        let adapterFields = [("modelId", JSONValue.string(carrierId))] + lora
        let createdAdapter = try stage("train") { try call("adapter/create", adapterFields) }
        let carrierAdapterId = try string(createdAdapter["adapterId"], "adapter/create")
        let adapterBytes = 4 * Int(createdAdapter["parameters"]?.intValue ?? 0)
        made.adapters.append(carrierAdapterId)
        let jobFields = [("modelId", JSONValue.string(carrierId)), ("adapterId", .string(carrierAdapterId))] + train.filter { $0.0 != "lora" }
        let created = try stage("train") { try call("train/create", jobFields) }
        let jobId = try string(created["jobId"], "train/create")
        made.jobs.append(jobId)
        // Measured: the carrier's weights as held, plus what jemalloc counts the adapter and the job
        // allocating (the step's arena is one of those allocations), sampled after every step.
        let carrierModel = try model(carrierId)
        var jobAllocated = max(0, (Jemalloc.allocatedBytes ?? 0) - beforeAdapter)
        let losses = try runSteps(jobId, context: context, stageName: "train", percentage: overall, call: call) {
            jobAllocated = max(jobAllocated, (Jemalloc.allocatedBytes ?? 0) - beforeAdapter)
        }
        let measuredPeak = carrierModel.bytes + jobAllocated
        let jobPlanned = created["plan"]?["peakBytes"]?.intValue.map(Int.init) ?? 0
        let plannedPeak = jobPlanned + carrierModel.bytes + adapterBytes
        // The same LoRA job (its settings as planned: seqLen after the longest-sequence cut,
        // checkpointing as `auto` chose) planned on the original: what LoRAM saves.
        let fullPlan = try fullModelLoRAPlan(original: original, adapter: try loadedAdapter(carrierAdapterId).adapter,
                                             settings: try job(jobId).job.settings)
        _ = try call("train/close", [("jobId", .string(jobId))])
        made.jobs.removeAll { $0 == jobId }

        // 6. Recover the adapter to the original's shapes.
        try begin("recover", "recovering the adapter to the original's shapes")
        var recoverFields: [(String, JSONValue)] = [("adapterId", .string(carrierAdapterId)), ("targetModelId", .string(originalId))]
        if let recover = params.recover { recoverFields += try Self.object(recover, field: "recover") }
        let recovered = try stage("recover") { try call("adapter/recover", recoverFields) }
        let recoveredId = try string(recovered["adapterId"], "adapter/recover")
        made.adapters.append(recoveredId)

        // 7. Perplexity of the original, of the carrier with its adapter, and of the original with the recovered adapter.
        try begin("evaluate", "evaluating")
        var evaluations: [JSONValue] = []
        for (index, dataset) in try Self.evalDatasets(params.eval).enumerated() {
            try context.checkCancelled()
            func perplexity(_ modelId: String, _ adapterId: String?) throws -> JSONValue {
                var fields: [(String, JSONValue)] = [("modelId", .string(modelId)), ("dataset", dataset.dataset)]
                if let adapterId { fields.append(("adapterId", .string(adapterId))) }
                if let seqLen = dataset.seqLen { fields.append(("seqLen", .int(Int64(seqLen)))) }
                if let n = dataset.maxSamples { fields.append(("maxSamples", .int(Int64(n)))) }
                return try stage("eval") { try call("eval/perplexity", fields)["perplexity"] ?? .null }
            }
            evaluations.append(.object([
                ("dataset", dataset.dataset["path"] ?? .int(Int64(index))),
                ("original", try perplexity(originalId, nil)),
                ("carrier", try perplexity(carrierId, nil)),
                ("carrierWithAdapter", try perplexity(carrierId, carrierAdapterId)),
                ("originalWithRecoveredAdapter", try perplexity(originalId, recoveredId)),
            ]))
        }

        // 8. Files: the adapter as trained, the recovered adapter, the report (the carrier is saved already).
        try begin("save", "writing \(outDir.path)")
        let trainedDirectory = outDir.appendingPathComponent("adapter-carrier")
        let recoveredDirectory = outDir.appendingPathComponent("adapter-recovered")
        _ = try stage("save") { try call("adapter/save", [("adapterId", .string(carrierAdapterId)), ("path", .string(trainedDirectory.path))]) }
        _ = try stage("save") { try call("adapter/save", [("adapterId", .string(recoveredId)), ("path", .string(recoveredDirectory.path))]) }
        // The recovered adapter also as the GGUF llama.cpp loads beside the original's GGUF (not
        // when it adapts lm_head of a tied model: llama.cpp has no output tensor to attach it to).
        let recoveredGGUF = outDir.appendingPathComponent("adapter-recovered.gguf")
        let adaptsLMHead = try loadedAdapter(recoveredId).adapter.lmHead != nil
        let ggufWritten = !(original.model.config.tiedEmbeddings && adaptsLMHead)
        if ggufWritten {
            _ = try stage("save") {
                try call("adapter/save", [("adapterId", .string(recoveredId)), ("path", .string(recoveredGGUF.path)), ("format", .string("gguf"))])
            }
        }
        timings.append(("save", .double(Date().timeIntervalSince(stageStart))))

        let originalParameters = original.model.parameterCount
        let carrierParameters = carrierModel.model.parameterCount
        let reduction = pruned["reduction"] ?? .double(Double(originalParameters) / Double(max(1, carrierParameters)))
        func int(_ n: Int) -> JSONValue { .int(Int64(n)) }
        func summary(_ losses: [Double]) -> JSONValue {
            .object([("steps", int(losses.count)), ("firstLoss", losses.first.map(JSONValue.double) ?? .null),
                     ("lastLoss", losses.last.map(JSONValue.double) ?? .null)])
        }
        let memory: JSONValue = .object([
            ("plannedPeakBytes", int(plannedPeak)), ("measuredPeakBytes", int(measuredPeak)),
            ("fullModelLoRAPlannedPeakBytes", int(fullPlan)),
            ("savedOverFullModelLoRA", .double(Double(fullPlan) / Double(max(1, plannedPeak)))),
        ])
        let files: JSONValue = .object([
            ("carrier", .string(carrierDirectory.path)), ("carrierAdapter", .string(trainedDirectory.path)),
            ("recoveredAdapter", .string(recoveredDirectory.path)),
            ("recoveredAdapterGGUF", ggufWritten ? .string(recoveredGGUF.path) : .null), ("report", .string(outDir.appendingPathComponent("report.json").path)),
        ])
        let parameters: JSONValue = .object([("original", int(originalParameters)), ("carrier", int(carrierParameters))])
        let bytes: JSONValue = .object([("original", int(original.bytes)), ("carrier", int(carrierModel.bytes))])
        let report: JSONValue = .object([
            ("parameters", parameters), ("reduction", reduction), ("bytes", bytes), ("memory", memory), ("align", alignLosses.map(summary) ?? .null),
            ("training", summary(losses)), ("perplexity", .array(evaluations)), ("seconds", .object(timings)), ("files", files),
        ])
        try ErrorMapping.translating {
            try AtomicFile.write(Data(report.serialized()), to: outDir.appendingPathComponent("report.json"))
        }
        context.progress?.report(message: "done", percentage: 100)
        return .object([("modelId", .string(originalId)), ("prunedModelId", .string(carrierId)),
                        ("carrierAdapterId", .string(carrierAdapterId)), ("adapterId", .string(recoveredId)), ("report", report)])
    }

    /// Steps a job to its end one `train/step` at a time, reporting each as progress; the losses.
    private func runSteps(_ jobId: String, context: RequestContext, stageName: String, percentage: (Double) -> Double,
                          call: (String, [(String, JSONValue)]) throws -> JSONValue, afterStep: () -> Void = {}) throws -> [Double] {
        let object = try job(jobId)
        var losses: [Double] = []
        while !object.job.isFinished {
            try context.checkCancelled()
            let result = try call("train/step", [("jobId", .string(jobId))])
            afterStep()
            guard case .array(let values)? = result["losses"], let loss = values.last?.doubleValue else { continue }
            losses.append(loss)
            let done = Double(object.job.completedSteps) / Double(max(1, object.job.settings.steps))
            context.progress?.report(message: "\(stageName) step \(object.job.completedSteps)/\(object.job.settings.steps), loss \(String(format: "%.4f", loss))",
                                     percentage: percentage(done), fields: [("stage", .string(stageName)), ("step", .int(Int64(object.job.completedSteps))),
                                              ("steps", .int(Int64(object.job.settings.steps))), ("loss", .double(loss))])
        }
        return losses
    }

    /// The same LoRA job planned on the original model (no allocation): what LoRAM is measured against.
    private func fullModelLoRAPlan(original: LoadedModel, adapter: LoRAAdapter, settings: TrainingJob.Settings) throws -> Int {
        let shape = LoRAAdapter(config: original.model.config, rank: adapter.rank, alpha: adapter.alpha, targets: adapter.targets)
        var settings = settings
        return try planTraining(loaded: original, adapter: shape, settings: &settings, checkpointing: settings.checkpointing ? "layer" : "none").total
            + original.bytes + 4 * shape.parameterCount
    }

    // MARK: - Params

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
