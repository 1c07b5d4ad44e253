import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `loram/run`: the whole LoRAM pipeline in one request: load the original, prune it, align the
/// carrier (optional), quantize it (optional), train LoRA on it, recover the adapter to the
/// original's shapes, evaluate, and write everything to `outDir`.
///
/// Every stage calls the service (or model and adapter method) its method calls, with the stage's
/// part of the request decoded as that method decodes it, so each validates, charges the budget
/// and fails exactly as it does alone; a failing stage's error carries `data.stage`, and a field it
/// names is prefixed with the stage's part of the params (`train.dataset.path`). What the pipeline
/// made is recorded in `made`, for the handler to unload if it fails.
extension Daemon {
    func runPipeline(_ params: LoramRunParams, context: RequestContext, made: PipelineObjects) throws -> LoRAMRunResult {
        let quiet = context.withoutProgress()
        let outDir = try PathParam.output(params.outDir, field: "outDir", rule: .outputFolder)
        var timings: [(String, JSONValue)] = []
        var stageStart = Date()
        let train = try Self.object(params.train, field: "train")
        let align = try Self.alignParams(params.align, train: train)
        let quantize = try Self.quantizeParams(params.quantize)
        let diagnostics = try Self.diagnosticsParams(params.diagnostics, train: train)
        switch (params.prune, params.carrier) {
        case (nil, nil): throw RPCError.invalidParams(field: "prune", "is required (or give carrier {path} of a saved carrier)")
        case (.some, .some): throw RPCError.invalidParams(field: "carrier", "give prune or carrier, not both")
        default: break
        }
        try Self.requireDatasetFiles(params, train: train)
        let plannedStages = ["load", params.carrier != nil ? "carrier" : "prune"] + (diagnostics != nil ? ["check"] : [])
            + (align != nil ? ["align"] : []) + (quantize != nil ? ["quantize"] : []) + ["train", "recover", "evaluate", "save"]
        var stageIndex = 0
        let progress = PipelineProgress(stages: plannedStages, train: train, align: align, prune: params.prune,
                                        diagnostics: diagnostics, eval: params.eval)
        /// The share of the whole a stage's own progress (0…1) maps to: stages weighted by their work.
        func overall(_ fraction: Double) -> Double { progress.percentage(stage: stageIndex - 1, fraction) }
        func begin(_ stage: String, _ message: String) throws {
            try context.checkCancelled()
            timings.append((plannedStages[max(0, stageIndex - 1)], .double(Date().timeIntervalSince(stageStart))))
            stageStart = Date()
            context.progress?.report(message: message, percentage: progress.percentage(stage: stageIndex, 0),
                                     fields: [("stage", .string(stage))])
            stageIndex = min(plannedStages.count, stageIndex + 1)
        }
        func stage<T>(_ name: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch let error as RPCError {
                var tagged = error.with("stage", .string(name))
                if let field = error.dataValue["field"]?.stringValue, ["train", "align", "prune", "eval", "recover", "quantize", "carrier", "diagnostics"].contains(name) {
                    tagged = tagged.with("field", .string("\(name).\(field)"))
                }
                throw tagged
            }
        }
        /// A stage's part of the request as the method it is given to decodes it (InvalidParams naming
        /// the field). The ids the pipeline fills in come last: a repeated key keeps its last value.
        func decode<P: Decodable>(_ type: P.Type, _ fields: [(String, JSONValue)]) throws -> P {
            try ParamsCoding.decode(P.self, from: .object(fields))
        }
        var warnings: [String] = []
        func warn(_ message: String) {
            warnings.append(message)
            context.log(.warning, message)
            context.progress?.report(message: "warning: \(message)", fields: [("stage", .string("check")), ("warning", .string(message))])
        }
        func int(_ n: Int) -> JSONValue { .int(Int64(n)) }

        // 1. The original model.
        context.progress?.report(message: "loading \(params.path)", percentage: 0, fields: [("stage", .string("load"))])
        stageIndex = 1
        let originalId = try stage("load") { try models.load(LoadParams(path: params.path, dtype: params.dtype), context: quiet).modelId }
        made.models.append(originalId)
        let original = try model(originalId)

        // 2. The carrier: pruned now, or a saved one (pruned, perhaps aligned, by an earlier run).
        var carrierId: String
        var pruned: PruneResult?
        if let carrierParam = params.carrier {
            try begin("carrier", "loading the saved carrier")
            carrierId = try stage("carrier") { try loadSavedCarrier(carrierParam, original: original, dtype: params.dtype, context: quiet) }
            made.models.append(carrierId)
        } else {
            try begin("prune", "pruning")
            let pruneParams = try Self.object(params.prune!, field: "prune")
            let result = try stage("prune") { try pruning.prune(try decode(PruneParams.self, pruneParams + [("modelId", .string(originalId))]), context: quiet) }
            pruned = result
            carrierId = result.modelId
            made.models.append(carrierId)
        }
        let carrierBeforeAlign = try model(carrierId)
        let priorAlignment = carrierBeforeAlign.model.pruning?.alignment

        // 3. How far the carrier is from the original, before anything is trained on it.
        var afterPrune: JSONValue = .null
        var diagnosis: JSONValue = .null
        func check(alignedSteps: Int?) throws -> JSONValue {
            guard let diagnostics else { return .null }
            // A problem with the training data is the train stage's, found early (train.dataset.path).
            return try stage(diagnostics.fromTrain ? "train" : "diagnostics") {
                try inference.compare(reference: original, other: try model(carrierId), dataset: diagnostics.dataset, seqLen: diagnostics.seqLen,
                                  maxSamples: diagnostics.maxSamples, alignedSteps: alignedSteps, context: quiet).json
            }
        }
        if diagnostics != nil {
            try begin("check", "measuring the carrier's distance from the original")
            afterPrune = try check(alignedSteps: priorAlignment?.steps)
            diagnosis = afterPrune
            context.progress?.report(message: afterPrune["verdict"]?["summary"]?.stringValue, fields: [("stage", .string("check"))])
        }

        // 4. Align: full-parameter training of the carrier, lm_head frozen; its weights become the carrier.
        var alignSummary: JSONValue = .null
        var afterAlign: JSONValue = .null
        var stagePeaks: [(String, JSONValue)] = []
        if let align {
            try begin("align", "aligning the pruned model")
            let carrierModel = try model(carrierId)
            var fields = align.fields
            if align.usesDefaultData {
                let text = try stage("align") {
                    do {
                        return try ErrorMapping.translating { try GeneralText.write(to: outDir.appendingPathComponent(GeneralText.fileName)) }
                    } catch let none as GeneralText.NoText {
                        throw RPCError.invalidParams(field: "dataset", none.description)
                    }
                }
                fields.append(("dataset", .object([("path", .string(text.url.path)), ("format", .string("text"))])))
                context.progress?.report(message: "aligning on \(text.documents) documents of general text (\(text.sources.joined(separator: ", ")))",
                                         fields: [("stage", .string("align"))])
            }
            let tied = carrierModel.model.config.tiedEmbeddings
            fields.append(("freeze", .array([.string("lm_head")])))
            switch align.embeddings {
            case "untie": if tied { fields.append(("untieEmbeddings", .bool(true))) }
            case "train": if tied { fields.removeAll { $0.0 == "freeze" } }  // the one tensor is both: trained
            default: break  // "freeze": a tied embedding is frozen with the head
            }
            // Measured as the train stage's is (below).
            let jobPeak = AllocatedPeak()
            let created = try stage("align") {
                try training.create(try decode(TrainingService.Request.self, fields + [("modelId", .string(carrierId))]), context: quiet)
            }
            let jobId = created.result.jobId
            made.jobs.append(jobId)
            let run = try runSteps(created.object, context: context, stageName: "align", percentage: overall, afterStep: jobPeak.sample)
            let jobAllocated = jobPeak.stop()
            let jobPlanned = created.result.plan.peakBytes
            stagePeaks.append(("align", .object([("plannedPeakBytes", int(jobPlanned + carrierModel.bytes)),
                                                 ("measuredPeakBytes", int(carrierModel.bytes + jobAllocated))])))
            // Kept in the carrier's own storage dtype (bf16 for a bf16 original), not the job's fp32.
            let dtype = align.dtype ?? carrierModel.model.storageDType.flatMap(Self.dtypeName)
            let aligned = try stage("align") { try training.close(jobId, keepModel: true, dtype: dtype) }
            made.jobs.removeAll { $0 == jobId }
            guard let alignedId = aligned?.modelId else { throw RPCError.internalError("train/close with keepModel kept no model") }
            made.models.append(alignedId)
            _ = try models.unload(ModelRef(modelId: carrierId), context: quiet)
            made.models.removeAll { $0 == carrierId }
            carrierId = alignedId
            alignSummary = run.summary(extra: [("embeddings", .string(tied ? align.embeddings : "untied model")),
                                               ("dataset", fields.first { $0.0 == "dataset" }?.1 ?? .null),
                                               ("dtype", (try model(carrierId)).model.storageDType.flatMap(Self.dtypeName).map(JSONValue.string) ?? .null)])
            if diagnostics != nil {
                afterAlign = try check(alignedSteps: (priorAlignment?.steps ?? 0) + run.losses.count)
                diagnosis = afterAlign
                context.progress?.report(message: afterAlign["verdict"]?["summary"]?.stringValue, fields: [("stage", .string("align"))])
            }
        }
        // A far or moderately far carrier is said plainly before any LoRA step is spent on it.
        let level = diagnosis["verdict"]?["level"]?.stringValue
        if let level, level != "close" {
            let suggestions: [String] = diagnosis["verdict"]?["suggestions"]?.arrayValue?.compactMap(\.stringValue) ?? []
            warn((diagnosis["verdict"]?["summary"]?.stringValue ?? "") + (suggestions.isEmpty ? "" : " Suggestions: " + suggestions.joined(separator: " ")))
        }

        // The (aligned) carrier is a publisher's artefact: saved now, in its own precision.
        let carrierDirectory = outDir.appendingPathComponent("carrier")
        _ = try stage("save") { try models.save(SaveParams(modelId: carrierId, path: carrierDirectory.path), context: quiet) }
        let unquantizedCarrier = try model(carrierId)

        func int64(_ value: JSONValue?) -> Int { value?.intValue.map(Int.init) ?? 0 }
        let originalParameters = original.model.parameterCount
        let diagnosticsReport: JSONValue = .object([("afterPrune", afterPrune), ("afterAlign", afterAlign),
                                                    ("warnings", .array(warnings.map(JSONValue.string)))])

        if params.stopIfFar == true, level == "far" {
            timings.append((plannedStages[max(0, stageIndex - 1)], .double(Date().timeIntervalSince(stageStart))))
            let report: JSONValue = .object([
                ("stoppedBefore", .string("train")), ("diagnostics", diagnosticsReport), ("align", alignSummary),
                ("parameters", .object([("original", int(originalParameters)), ("carrier", int(unquantizedCarrier.model.parameterCount))])),
                ("seconds", .object(timings)),
                ("files", .object([("carrier", .string(carrierDirectory.path)), ("report", .string(outDir.appendingPathComponent("report.json").path))])),
            ])
            try ErrorMapping.translating { try AtomicFile.write(Data(report.serialized()), to: outDir.appendingPathComponent("report.json")) }
            context.progress?.report(message: "stopped before training: the carrier is far from the original", percentage: 100)
            return LoRAMRunResult(modelId: originalId, prunedModelId: carrierId, carrierAdapterId: nil, adapterId: nil, report: report)
        }

        // 5. Quantize the frozen carrier to NF4 (QLoRAM); training needs only the quantized copy.
        if let quantize {
            try begin("quantize", "quantizing the carrier to NF4")
            let quantized = try stage("quantize") { try pruning.quantize(try decode(QuantizeParams.self, quantize + [("modelId", .string(carrierId))]), context: quiet) }
            let unquantized = carrierId
            carrierId = quantized.modelId
            made.models.append(carrierId)
            _ = try models.unload(ModelRef(modelId: unquantized), context: quiet)
            made.models.removeAll { $0 == unquantized }
        }

        // 6. LoRA on the carrier.
        try begin("train", "training LoRA on the carrier")
        let lora = try Self.loraParams(JSONValue.object(train)["lora"])
        // Measured: the carrier's weights as held (`bytes`, loaded before the window), plus the
        // most bytes jemalloc counts allocated process-wide above the count before adapter/create,
        // sampled every millisecond from then to the last step (AllocatedPeak says what that
        // includes: anything else the daemon does meanwhile, too). Planned: the same carrier bytes,
        // the adapter's tensors and the job's plan (TrainingAllocations and the rows), each
        // allocation at its jemalloc size class, the small ones under stated bounds.
        let jobPeak = AllocatedPeak()
        let adapterFields = lora + [("modelId", JSONValue.string(carrierId))]
        let createdAdapter = try stage("train") { try adapters.create(try decode(AdapterCreateParams.self, adapterFields), context: quiet) }
        let carrierAdapterId = createdAdapter.adapterId
        // As allocated: each of the adapter's tensors at its jemalloc size class, and its small objects' bound.
        let trainedAdapter = try registry.loadedAdapter(carrierAdapterId).adapter
        let carrierShape = try model(carrierId).model.config.modelShape, adapterShape = Workload.LoRA(r: trainedAdapter.rank, targets: trainedAdapter.targets)
        let adapterBytes = TrainingAllocations.adapterPlannedBytes(carrierShape, adapterShape)
        made.adapters.append(carrierAdapterId)
        let jobFields = train.filter { $0.0 != "lora" } + [("modelId", JSONValue.string(carrierId)), ("adapterId", .string(carrierAdapterId))]
        let created = try stage("train") { try training.create(try decode(TrainingService.Request.self, jobFields), context: quiet) }
        let jobId = created.result.jobId
        made.jobs.append(jobId)
        let carrierModel = try model(carrierId)
        let trainingRun = try runSteps(created.object, context: context, stageName: "train", percentage: overall, afterStep: jobPeak.sample)
        let jobAllocated = jobPeak.stop()
        let measuredPeak = carrierModel.bytes + jobAllocated
        let jobPlanned = created.result.plan.peakBytes
        let plannedPeak = jobPlanned + carrierModel.bytes + adapterBytes
        stagePeaks.append(("train", .object([("plannedPeakBytes", int(plannedPeak)), ("measuredPeakBytes", int(measuredPeak))])))
        // The same LoRA job (its settings as planned: seqLen after the longest-sequence cut,
        // checkpointing as `auto` chose) planned on the original: what LoRAM saves.
        let fullPlan = try fullModelLoRAPlan(original: original, adapter: try registry.loadedAdapter(carrierAdapterId).adapter,
                                             settings: created.object.job.settings, dataBytes: created.result.plan.breakdown.data)
        _ = try training.close(jobId, keepModel: false, dtype: nil)
        made.jobs.removeAll { $0 == jobId }

        // 7. Recover the adapter to the original's shapes.
        try begin("recover", "recovering the adapter to the original's shapes")
        let recoverFields = (try params.recover.map { try Self.object($0, field: "recover") } ?? [])
            + [("adapterId", .string(carrierAdapterId)), ("targetModelId", .string(originalId))]
        let recovered = try stage("recover") { try pruning.recover(try decode(RecoverParams.self, recoverFields)) }
        let recoveredId = recovered.adapter.adapterId
        made.adapters.append(recoveredId)

        // 8. Perplexity of the original, of the carrier with its adapter, and of the original with the recovered adapter.
        try begin("evaluate", "evaluating")
        // Progress per arm: the stage is a sixth of the main job's time.
        var armsDone = 0
        let arms = Double(max(2, 4 * params.eval.count))
        func perplexity(_ modelId: String, _ adapterId: String?, _ dataset: EvalDataset) throws -> JSONValue {
            var fields: [(String, JSONValue)] = [("modelId", .string(modelId)), ("dataset", dataset.dataset)]
            if let adapterId { fields.append(("adapterId", .string(adapterId))) }
            if let seqLen = dataset.seqLen { fields.append(("seqLen", .int(Int64(seqLen)))) }
            if let n = dataset.maxSamples { fields.append(("maxSamples", .int(Int64(n)))) }
            let perplexity = try stage("eval") { try inference.perplexity(try decode(InferenceService.PerplexityParams.self, fields), context: quiet).perplexity }
            armsDone += 1
            context.progress?.report(message: "evaluated \(armsDone) of \(Int(arms)) arms", percentage: overall(Double(armsDone) / arms),
                                     fields: [("stage", .string("evaluate"))])
            // As the method's answer carries it: a perplexity past a double's range is null.
            return perplexity.isFinite ? .double(perplexity) : .null
        }
        var evaluations: [JSONValue] = []
        for (index, dataset) in params.eval.enumerated() {
            try context.checkCancelled()
            evaluations.append(.object([
                ("dataset", dataset.dataset["path"] ?? .int(Int64(index))),
                ("original", try perplexity(originalId, nil, dataset)),
                ("carrier", try perplexity(carrierId, nil, dataset)),
                ("carrierWithAdapter", try perplexity(carrierId, carrierAdapterId, dataset)),
                ("originalWithRecoveredAdapter", try perplexity(originalId, recoveredId, dataset)),
            ]))
        }
        // The recovered adapter's effect on the original, said plainly: on the first eval dataset,
        // else on the calibration sample of the training data.
        let verdict: JSONValue
        if let first = evaluations.first, let before = first["original"]?.doubleValue, let after = first["originalWithRecoveredAdapter"]?.doubleValue {
            verdict = Self.verdict(before: before, after: after, on: "held-out \(first["dataset"]?.stringValue ?? "eval data")", heldOut: true,
                                   diagnosis: diagnosis)
        } else {
            let sample = EvalDataset(dataset: diagnostics?.dataset.json ?? (train.first { $0.0 == "dataset" }?.1 ?? .null),
                                     seqLen: diagnostics?.seqLen ?? Self.compareDefaultSeqLen, maxSamples: diagnostics?.maxSamples ?? Self.compareDefaultSamples)
            let before = try perplexity(originalId, nil, sample).doubleValue ?? .nan, after = try perplexity(originalId, recoveredId, sample).doubleValue ?? .nan
            verdict = Self.verdict(before: before, after: after, on: "a sample of the training data (no eval dataset given)", heldOut: false,
                                   diagnosis: diagnosis)
        }
        if let text = verdict["text"]?.stringValue { context.progress?.report(message: text, fields: [("stage", .string("evaluate"))]) }
        if verdict["effect"]?.stringValue == "worse", let text = verdict["text"]?.stringValue { context.log(.warning, text) }

        // 9. Files: the adapter as trained, the recovered adapter, the report (the carrier is saved already).
        try begin("save", "writing \(outDir.path)")
        let trainedDirectory = outDir.appendingPathComponent("adapter-carrier")
        let recoveredDirectory = outDir.appendingPathComponent("adapter-recovered")
        _ = try stage("save") { try adapters.save(AdapterSaveParams(adapterId: carrierAdapterId, path: trainedDirectory.path), context: quiet) }
        _ = try stage("save") { try adapters.save(AdapterSaveParams(adapterId: recoveredId, path: recoveredDirectory.path), context: quiet) }
        // The recovered adapter also as the GGUF llama.cpp loads beside the original's GGUF (not
        // when it adapts lm_head of a tied model: llama.cpp has no output tensor to attach it to).
        let recoveredGGUF = outDir.appendingPathComponent("adapter-recovered.gguf")
        let adaptsLMHead = try registry.loadedAdapter(recoveredId).adapter.lmHead != nil
        let ggufWritten = !(original.model.config.tiedEmbeddings && adaptsLMHead)
        if ggufWritten {
            _ = try stage("save") {
                try adapters.save(AdapterSaveParams(adapterId: recoveredId, path: recoveredGGUF.path, format: "gguf"), context: quiet)
            }
        }
        timings.append(("save", .double(Date().timeIntervalSince(stageStart))))

        let carrierParameters = carrierModel.model.parameterCount
        // Two reductions, named for what they count: the carrier's parameters against the
        // original's (model/prune's), and the paper's storage accounting (memory/plan's `reduction`:
        // ×4 for an NF4 carrier, every parameter counted at 4 bits). Plus the bytes actually held.
        let parameterReduction = pruned?.reduction
            ?? Self.paperParameterReduction(original: original, carrier: unquantizedCarrier) ?? Double(originalParameters) / Double(max(1, carrierParameters))
        let storageReduction = parameterReduction * (quantize != nil ? 4 : 1)
        let reductions: JSONValue = .object([
            ("parameters", .double(parameterReduction)), ("paperStorage", .double(storageReduction)),
            ("bytesHeld", .double(Double(original.bytes) / Double(max(1, carrierModel.bytes)))),
        ])
        func summary(_ run: StepsRun) -> JSONValue { run.summary(extra: []) }
        let largest = stagePeaks.max { int64($0.1["measuredPeakBytes"]) < int64($1.1["measuredPeakBytes"]) }?.0
        let memory: JSONValue = .object([
            ("plannedPeakBytes", int(plannedPeak)), ("measuredPeakBytes", int(measuredPeak)),
            ("fullModelLoRAPlannedPeakBytes", int(fullPlan)),
            ("savedOverFullModelLoRA", .double(Double(fullPlan) / Double(max(1, plannedPeak)))),
            ("stages", .object(stagePeaks)), ("largestStage", largest.map(JSONValue.string) ?? .null),
        ])
        let files: JSONValue = .object([
            ("carrier", .string(carrierDirectory.path)), ("carrierAdapter", .string(trainedDirectory.path)),
            ("recoveredAdapter", .string(recoveredDirectory.path)),
            ("recoveredAdapterGGUF", ggufWritten ? .string(recoveredGGUF.path) : .null), ("report", .string(outDir.appendingPathComponent("report.json").path)),
        ])
        let parameters: JSONValue = .object([("original", int(originalParameters)), ("carrier", int(carrierParameters))])
        let bytes: JSONValue = .object([("original", int(original.bytes)), ("carrier", int(carrierModel.bytes))])
        let report: JSONValue = .object([
            ("parameters", parameters), ("reduction", .double(parameterReduction)), ("reductions", reductions), ("bytes", bytes), ("memory", memory),
            ("diagnostics", diagnosticsReport), ("align", alignSummary), ("training", summary(trainingRun)), ("perplexity", .array(evaluations)),
            ("verdict", verdict), ("seconds", .object(timings)), ("files", files),
        ])
        try ErrorMapping.translating {
            try AtomicFile.write(Data(report.serialized()), to: outDir.appendingPathComponent("report.json"))
        }
        context.progress?.report(message: "done", percentage: 100)
        return LoRAMRunResult(modelId: originalId, prunedModelId: carrierId, carrierAdapterId: carrierAdapterId, adapterId: recoveredId, report: report)
    }}

/// What `loram/run` answers: the original, the (aligned, quantized) carrier, the adapter trained on
/// it and the one recovered to the original (both null when it stopped before training), and the report.
struct LoRAMRunResult: WireResult {
    var modelId: String
    var prunedModelId: String
    var carrierAdapterId: String?
    var adapterId: String?
    var report: JSONValue
}
