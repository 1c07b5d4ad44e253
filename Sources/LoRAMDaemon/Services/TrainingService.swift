import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Training jobs: settings checked by the one rule, the job planned and charged before anything
/// is allocated (OverBudget with a change that fits), created, resumed and closed. A job owns its
/// activations, gradients and optimizer state, charged from creation to close. `TrainingSteps`
/// runs its steps and writes its checkpoints.
struct TrainingService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    /// What train/create asks for, as decoded (`train/create`'s params).
    struct Request: Decodable {
        var modelId: String
        var adapterId: String?
        var freeze: [String]?
        var dataset: DatasetParam
        var evalDataset: DatasetParam?
        @Size<SizeBounds.SeqLen> var seqLen: Int
        @Size<SizeBounds.MicroBatch> var microBatch: Int
        @SizeIfGiven<SizeBounds.GradAccum> var gradAccum: Int?
        @Size<SizeBounds.Steps> var steps: Int
        var lr: Double
        var schedule: String?
        @SizeIfGiven<SizeBounds.StepCount> var warmupSteps: Int?
        var weightDecay: Double?
        var maxGradNorm: Double?
        var checkpointing: String?
        /// loramd's: `f32` (default) or `bf16`, how each layer's activations are kept for the backward.
        var activationDtype: String?
        /// loramd's: `f32` or `bf16` (default: `initialize`'s), how the frozen weights' products are computed.
        var matmulDtype: String?
        var seed: UInt64?
        var packing: Bool?
        /// loramd's: full-parameter training of a tied model trains the input embedding as its own
        /// tensor and keeps the output head as it was (the result is untied).
        var untieEmbeddings: Bool?
    }

    /// A job made, with what the pipeline reads of it beyond the answer.
    struct Created {
        var result: TrainCreateResult
        var object: TrainingJobObject
    }

    func create(_ request: Request, context: RequestContext) throws -> Created {
        let loaded = try registry.model(request.modelId)
        var settings = try Self.settings(request)
        let adapter = try request.adapterId.map { try registry.trainableAdapter($0, modelId: request.modelId) }
        if adapter != nil, let freeze = request.freeze, !freeze.isEmpty {
            throw RPCError.invalidParams(field: "freeze", "applies to full-parameter training (no adapterId); an adapter trains only itself")
        }
        if adapter != nil, request.untieEmbeddings == true {
            throw RPCError.invalidParams(field: "untieEmbeddings", "applies to full-parameter training (no adapterId)")
        }
        let dataset = try DatasetReader.read(request.dataset, field: "dataset", model: loaded)
        let evalDataset = try request.evalDataset.map { try DatasetReader.read($0, field: "evalDataset", model: loaded) }
        // Each dataset is cut to rows once; the rows are checked, measured and trained on as they are.
        let rows = dataset.sequences(seqLen: settings.seqLen)
        let evalRows = evalDataset.map { $0.sequences(seqLen: settings.seqLen) }
        let examples = settings.packing ? dataset.examples : rows
        try Self.requireTrainable(examples, of: dataset, field: "dataset", seqLen: settings.seqLen, packing: settings.packing)
        if let evalDataset, let evalRows { try Self.requireTrainable(evalRows, of: evalDataset, field: "evalDataset", seqLen: settings.seqLen, packing: false) }
        // Plan for the worst case the data can produce: without packing, no row is longer than
        // the longest (truncated) example of either dataset, so the step is sized for that. The
        // rows cut at the request's seqLen are the rows cut at this one: none is longer.
        let longest = (rows + (evalRows ?? [])).map(\.ids.count).max() ?? 0
        if !settings.packing { settings.seqLen = min(settings.seqLen, max(2, longest)) }
        // Untied, a tied model's input embedding trains as a tensor of its own and its head stays as
        // it was: frozen, named or not (the job's gradient buffers and the plan both follow `frozen`).
        if settings.untieEmbeddings && loaded.model.config.tiedEmbeddings && !FrozenTensors(settings.frozen).contains("lm_head.weight") {
            settings.frozen.append("lm_head")
        }
        // Aligning a 2:4 or magnitude carrier keeps its zeros.
        settings.keepZeros = adapter == nil && loaded.model.pruning.map { !$0.method.isStructured } == true
        // The rows the job holds, as allocated, and the datasets as read, which live until create
        // returns (after the job's buffers are made); storage a row shares with its example counts once.
        let dataBytes = Dataset.Example.heldBytes([examples, dataset.examples, rows] + (evalRows.map { [$0] } ?? []) + (evalDataset.map { [$0.examples] } ?? []),
                                                  loaderOrders: 1)
            + (evalRows.map { Dataset.Example.evaluationBytes($0, microBatch: settings.microBatch, seqLen: settings.seqLen) } ?? 0)
        let plan = try plan(loaded, adapter: adapter, settings: &settings, checkpointing: try CheckpointingChoice.parse(request.checkpointing),
                            dataBytes: dataBytes)
        let handle = registry.newHandle(.job)
        do {
            try ledger.charge(Int64(plan.total), to: handle, breakdown: plan.breakdown.json)
        } catch let error as RPCError where error.code == .overBudget {
            throw error.with("suggestion", suggestion(loaded, adapter: adapter, settings: settings, dataBytes: dataBytes).json)
        }
        let job: TrainingJob
        do {
            job = try ErrorMapping.translating { try TrainingJob(model: loaded.model, adapter: adapter, examples: examples, settings: settings, placement: plan.placement) }
        } catch {
            ledger.release(handle)
            throw error
        }
        let object = TrainingJobObject(handle: handle, job: job, model: loaded, adapterId: request.adapterId,
                                       dataset: .init(path: dataset.url.path, format: dataset.format.rawValue,
                                                      trainOnInputs: request.dataset.trainOnInputs ?? false),
                                       evalExamples: evalRows, plannedBytes: plan.total)
        registry.insert(object, as: .job)
        var warnings: [String] = []
        if let message = MatmulDTypeParam.warning(settings.matmulDType) {
            context.log(.warning, message)
            warnings.append(message)
        }
        if !dataset.completionsContainEOS(eosIds: loaded.eosTokenIds, seqLen: settings.seqLen) {
            let message = "No completion in \(dataset.url.lastPathComponent) ends in an EOS token, so a model trained on it never learns to stop; end each completion with the EOS text (e.g. \"</s>\")."
            context.log(.warning, message)
            warnings.append(message)
        }
        let planned = TrainingCreatedPlan(peakBytes: plan.total, breakdown: plan.breakdown, seqLen: settings.seqLen, longestSequence: longest,
                                          checkpointing: settings.checkpointing ? "layer" : "none",
                                          activationDtype: settings.activationDType.rawValue,
                                          matmulDtype: settings.matmulDType.effective.rawValue)
        return Created(result: TrainCreateResult(jobId: handle, plan: planned, parameters: job.gradients.parameterCount,
                                                 examples: examples.count, warnings: warnings), object: object)
    }

    /// A job from a folder train/save or train/run wrote (an outDir of train/run: its newest
    /// complete checkpoint), on `modelId` or the loaded model it was trained on.
    func resume(path: String, modelId: String?) throws -> TrainResumeResult {
        let given = try PathParam.existingDirectory(path, field: "path")
        let directory = try ErrorMapping.translating { try TrainingCheckpoints.resumable(given) }
        let state = try ErrorMapping.translating { try TrainingJob.readState(directory) }
        let loaded: LoadedModel
        if let modelId {
            loaded = try registry.model(modelId)
        } else if let match = registry.objects(.model).compactMap({ $0 as? LoadedModel }).first(where: { $0.source.path == state.model }) {
            loaded = match
        } else {
            throw RPCError.invalidParams(field: "modelId", "no loaded model comes from \(state.model); load it first or give modelId")
        }
        if let problem = state.problem(model: loaded.model.config) {
            throw ErrorMapping.rpc(FormatError(file: TrainingJob.stateFile, problem))
        }
        guard let reference = state.dataset else {
            throw RPCError(.formatError, "Format error: \(TrainingJob.stateFile) names no dataset", hint: "Resume a state saved by train/save.",
                           data: [("file", .string(TrainingJob.stateFile)), ("problem", .string("no dataset"))])
        }
        let dataset = try DatasetReader.read(DatasetParam(path: reference.path, format: reference.format, trainOnInputs: reference.trainOnInputs),
                                             field: "dataset", model: loaded)
        var settings = state.settings
        let examples = settings.packing ? dataset.examples : dataset.sequences(seqLen: settings.seqLen)
        try Self.requireTrainable(examples, of: dataset, field: "dataset", seqLen: settings.seqLen, packing: settings.packing)
        let adapterShape = state.adapter.map { LoRAAdapter(config: loaded.model.config, rank: $0.rank, alpha: $0.alpha, dropout: $0.dropout,
                                                            targets: Set($0.targets.compactMap(LoRATarget.init(rawValue:)))) }
        var plan = try plan(loaded, adapter: adapterShape, settings: &settings, checkpointing: settings.checkpointing ? .layer : .none,
                            dataBytes: Dataset.Example.heldBytes([examples, dataset.examples], loaderOrders: 1))
        // A resumed job makes its adapter itself (no adapter/create charged it).
        if let adapterShape {
            let lora = Workload.LoRA(r: adapterShape.rank, targets: adapterShape.targets), shape = loaded.model.config.modelShape
            plan.adapter = TrainingAllocations.adapterPlannedBytes(shape, lora)
        }
        let handle = registry.newHandle(.job)
        try ledger.charge(Int64(plan.total), to: handle, breakdown: plan.breakdown.json)
        do {
            let job = try ErrorMapping.translating { try TrainingJob.resume(from: directory, model: loaded.model, examples: examples) }
            let object = TrainingJobObject(handle: handle, job: job, model: loaded, adapterId: nil, dataset: reference,
                                           evalExamples: nil, plannedBytes: plan.total)
            registry.insert(object, as: .job)
            return TrainResumeResult(jobId: handle, step: job.completedSteps, plan: plan.summary, path: directory.path)
        } catch {
            ledger.release(handle)
            throw error
        }
    }

    /// Ends a job: its bytes go back to the budget. With `keepModel`, a full-parameter job's
    /// weights become a model of their own (LoRAM's aligned carrier), in `dtype` (else fp32).
    func close(_ jobId: String, keepModel: Bool, dtype dtypeName: String?) throws -> DerivedModelResult? {
        let object = try registry.job(jobId)
        let dtype = try Daemon.weightDType(dtypeName)
        guard keepModel else {
            if dtypeName != nil { throw RPCError.invalidParams(field: "dtype", "applies with keepModel: true") }
            try object.exclusively {
                registry.remove(jobId, kind: .job)
                ledger.release(jobId)
            }
            return nil
        }
        // No copy; the job's gradients, moments and arena go back to the budget.
        guard object.job.adapter == nil else {
            throw RPCError.invalidParams(field: "keepModel", "applies to full-parameter jobs; save a LoRA job's adapter with adapter/save")
        }
        return try object.exclusively {
            // A pruned model's full-parameter training is its alignment: the manifest records it.
            let job = object.job
            let trained = job.weights.snapshot(alignment: .init(steps: job.completedSteps,
                                                                tokens: job.completedSteps * job.settings.gradAccum * job.settings.microBatch * job.settings.seqLen))
            // Narrowed (e.g. to the original's bf16) while the job's charge still covers the fp32 weights.
            let model = dtype.map { trained.converted(to: $0) } ?? trained
            let handle = registry.newHandle(.model)
            // The job's charge covered these very weights: released first, the model's fits in it.
            registry.remove(jobId, kind: .job)
            ledger.release(jobId)
            try ledger.charge(Int64(model.byteCount), to: handle, breakdown: .object([("weights", .int(Int64(model.byteCount)))]))
            let loaded = object.model.derived(handle: handle, model: model, bytes: model.byteCount)
            registry.insert(loaded, as: .model)
            return DerivedModelResult(modelId: handle, parameters: model.parameterCount, bytes: loaded.bytes, config: loaded.configSummary)
        }
    }

    /// Rows a step can learn from: some example, some token, and some label a shifted loss
    /// counts. Without one, every step would "succeed" with loss 0 (eval/perplexity refuses the same).
    static func requireTrainable(_ examples: [Dataset.Example], of dataset: Dataset, field: String, seqLen: Int, packing: Bool) throws {
        if let problem = DataLoader.problem(examples: examples, mode: packing ? .pack : .truncate, seqLen: seqLen) {
            throw RPCError.invalidParams(field: field, "\(dataset.url.lastPathComponent) \(problem)")
        }
    }

    /// A request's settings, checked by the rule a saved state's are checked by (`Settings.problem`)
    /// and within SizeLimits, before the dataset is read or anything is planned.
    static func settings(_ p: Request) throws -> TrainingJob.Settings {
        var s = TrainingJob.Settings(seqLen: p.seqLen, microBatch: p.microBatch, steps: p.steps, lr: p.lr)
        if let g = p.gradAccum { s.gradAccum = g }
        if let w = p.warmupSteps { s.warmupSteps = w }
        if let wd = p.weightDecay { s.weightDecay = wd }
        // 0 turns clipping off; a negative norm stays, for the rule to refuse.
        if let m = p.maxGradNorm { s.maxGradNorm = m == 0 ? nil : m }
        s.seed = p.seed ?? 0
        s.packing = p.packing ?? false
        s.frozen = p.freeze ?? []
        s.untieEmbeddings = p.untieEmbeddings ?? false
        s.activationDType = try ActivationDTypeParam.parse(p.activationDtype, field: "activationDtype")
        s.matmulDType = try MatmulDTypeParam.parse(p.matmulDtype, field: "matmulDtype", fallback: .processDefault)
        if let problem = s.problem { throw RPCError.invalidParams(field: problem.field, problem.requirement) }
        if let schedule = p.schedule {
            guard let kind = LearningRateSchedule.Kind(rawValue: schedule) else {
                throw RPCError.invalidParams(field: "schedule", "must be cosine, linear or constant, got '\(schedule)'")
            }
            s.schedule = kind
        }
        // gradAccum sizes no buffer but the batches a step draws.
        do {
            try Workload(kind: .train, microBatch: s.microBatch, seqLen: s.seqLen, gradAccum: s.gradAccum).checkSizes()
        } catch let error as SizeError {
            throw ErrorMapping.invalidParams(error, overflowField: "seqLen")
        }
        return s
    }
}
