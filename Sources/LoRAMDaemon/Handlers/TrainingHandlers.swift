import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `train/create`, `train/step`, `train/run`, `train/save`, `train/resume`, `train/close`.
/// A job owns its activations, gradients and optimizer state, charged to the budget from creation
/// to `train/close`. One step runs at a time per job; other jobs and requests run alongside.
extension Daemon {
    struct TrainCreateParams: Decodable {
        var modelId: String
        var adapterId: String?
        var freeze: [String]?
        var dataset: DatasetParam
        var evalDataset: DatasetParam?
        var seqLen: Int
        var microBatch: Int
        var gradAccum: Int?
        var steps: Int
        var lr: Double
        var schedule: String?
        var warmupSteps: Int?
        var weightDecay: Double?
        var maxGradNorm: Double?
        var checkpointing: String?
        var seed: UInt64?
        var packing: Bool?
        /// loramd's: full-parameter training of a tied model trains the input embedding as its own
        /// tensor and keeps the output head as it was (the result is untied).
        var untieEmbeddings: Bool?
    }

    struct JobRef: Decodable { var jobId: String }
    /// `keepModel` (loramd's): a full-parameter job's trained weights stay as a new model.
    /// `dtype` (with keepModel): the kept model's storage (f32, bf16, f16); absent: as trained (f32).
    struct TrainCloseParams: Decodable { var jobId: String; var keepModel: Bool?; var dtype: String? }
    struct TrainStepParams: Decodable { var jobId: String; var steps: Int? }
    struct TrainRunParams: Decodable { var jobId: String; var evalEvery: Int?; var saveEvery: Int?; var outDir: String? }
    struct TrainSaveParams: Decodable { var jobId: String; var path: String }
    struct TrainResumeParams: Decodable { var path: String; var modelId: String?; var adapterId: String? }

    func job(_ id: String) throws -> TrainingJobObject {
        do {
            return try registry.lookup(id, kind: .job) as! TrainingJobObject
        } catch let error as RPCError {
            throw error.with("field", .string("jobId"))
        }
    }

    func registerTraining() {
        router.register("train/create") { [unowned self] (params: TrainCreateParams, context) -> JSONValue in
            let loaded = try model(params.modelId)
            let settings = try Self.trainingSettings(params)
            let adapter = try params.adapterId.map { try trainableAdapter($0, modelId: params.modelId) }
            if adapter != nil, let freeze = params.freeze, !freeze.isEmpty {
                throw RPCError.invalidParams(field: "freeze", "applies to full-parameter training (no adapterId); an adapter trains only itself")
            }
            if adapter != nil, params.untieEmbeddings == true {
                throw RPCError.invalidParams(field: "untieEmbeddings", "applies to full-parameter training (no adapterId)")
            }
            let dataset = try readDataset(params.dataset, field: "dataset", model: loaded)
            let evalDataset = try params.evalDataset.map { try readDataset($0, field: "evalDataset", model: loaded) }
            try Self.requireTrainable(dataset, field: "dataset", seqLen: settings.seqLen, packing: settings.packing)
            if let evalDataset { try Self.requireTrainable(evalDataset, field: "evalDataset", seqLen: settings.seqLen, packing: false) }
            var settingsToUse = settings
            // Plan for the worst case the data can produce: without packing, no row is longer than
            // the longest (truncated) example of either dataset, so the step is sized for that.
            let longest = ([dataset] + (evalDataset.map { [$0] } ?? [])).flatMap { $0.sequences(seqLen: settings.seqLen) }.map(\.ids.count).max() ?? 0
            if !settings.packing { settingsToUse.seqLen = min(settings.seqLen, max(2, longest)) }
            // Aligning a 2:4 or magnitude carrier keeps its zeros.
            settingsToUse.keepZeros = adapter == nil && loaded.model.pruning.map { !$0.method.isStructured } == true
            let plan = try planTraining(loaded: loaded, adapter: adapter, settings: &settingsToUse, checkpointing: try CheckpointingChoice.parse(params.checkpointing))
            let handle = registry.newHandle(.job)
            do {
                try ledger.charge(Int64(plan.total), to: handle, breakdown: plan.breakdown)
            } catch let error as RPCError where error.code == .overBudget {
                throw error.with("suggestion", trainingSuggestion(loaded: loaded, adapter: adapter, settings: settingsToUse))
            }
            let examples = settingsToUse.packing ? dataset.examples : dataset.sequences(seqLen: settingsToUse.seqLen)
            let job = try TrainingJob(model: loaded.model, adapter: adapter, examples: examples, settings: settingsToUse, placement: plan.placement)
            let object = TrainingJobObject(handle: handle, job: job, model: loaded, adapterId: params.adapterId,
                                           dataset: .init(path: dataset.url.path, format: dataset.format.rawValue,
                                                          trainOnInputs: params.dataset.trainOnInputs ?? false),
                                           evalExamples: evalDataset.map { $0.sequences(seqLen: settingsToUse.seqLen) }, plannedBytes: plan.total)
            registry.insert(object, as: .job)
            var warnings: [JSONValue] = []
            if !dataset.completionsContainEOS(eosIds: loaded.eosTokenIds, seqLen: settingsToUse.seqLen) {
                let message = "No completion in \(dataset.url.lastPathComponent) ends in an EOS token, so a model trained on it never learns to stop; end each completion with the EOS text (e.g. \"</s>\")."
                context.log(.warning, message)
                warnings.append(.string(message))
            }
            let planJSON = plan.json(extra: [("seqLen", .int(Int64(settingsToUse.seqLen))), ("longestSequence", .int(Int64(longest))),
                                             ("checkpointing", .string(settingsToUse.checkpointing ? "layer" : "none"))])
            return .object([("jobId", .string(handle)), ("plan", planJSON), ("parameters", .int(Int64(job.gradients.parameterCount))),
                             ("examples", .int(Int64(examples.count))), ("warnings", .array(warnings))])
        }

        router.register("train/step") { [unowned self] (params: TrainStepParams, context) -> JSONValue in
            let object = try job(params.jobId)
            let count = params.steps ?? 1
            guard count >= 1 else { throw RPCError.invalidParams(field: "steps", "must be at least 1") }
            return try object.exclusively {
                var losses: [JSONValue] = []
                var last: TrainingJob.StepResult?
                var seconds = 0.0, tokens = 0
                for _ in 0..<count {
                    guard !object.job.isFinished else {
                        if last == nil { throw RPCError.invalidParams(field: "jobId", "the job has run all its \(object.job.settings.steps) steps") }
                        break
                    }
                    try context.checkCancelled()
                    let result = try object.job.runStep(checkpoint: context.checkCancelled)
                    losses.append(.double(result.loss))
                    seconds += result.seconds
                    tokens += result.tokens
                    last = result
                }
                let result = last!
                return .object([("step", .int(Int64(result.step))), ("losses", .array(losses)), ("lr", .double(result.lr)),
                                ("gradNorm", .double(result.gradNorm)), ("tokensPerSecond", .double(Double(tokens) / max(seconds, 1e-9))),
                                ("peakBytes", .int(Int64(object.plannedBytes + object.model.bytes))),
                                ("arena", object.arenaReport)])
            }
        }

        router.register("train/run") { [unowned self] (params: TrainRunParams, context) -> JSONValue in
            let object = try job(params.jobId)
            if let n = params.evalEvery, n < 1 { throw RPCError.invalidParams(field: "evalEvery", "must be at least 1") }
            if let n = params.saveEvery, n < 1 { throw RPCError.invalidParams(field: "saveEvery", "must be at least 1") }
            if params.saveEvery != nil && params.outDir == nil { throw RPCError.invalidParams(field: "outDir", "is required with saveEvery") }
            let outDir = try params.outDir.map { try PathParam.output($0, field: "outDir") }
            return try object.exclusively {
                let job = object.job
                let total = job.settings.steps
                let start = Date()
                let firstStep = job.completedSteps
                var last: TrainingJob.StepResult?
                var evalLoss: Double?
                var checkpoints: [JSONValue] = []
                context.progress?.report(message: "training \(total - firstStep) steps", percentage: 100 * Double(firstStep) / Double(total))
                while !job.isFinished {
                    if context.isCancelled {
                        throw RPCError.requestCancelled.with("partial", .object([("step", .int(Int64(job.completedSteps))),
                                                                                ("loss", last.map { .double($0.loss) } ?? .null)]))
                    }
                    let result = try job.runStep {
                        if context.isCancelled {
                            throw RPCError.requestCancelled.with("partial", .object([("step", .int(Int64(job.completedSteps))),
                                                                                    ("loss", last.map { .double($0.loss) } ?? .null)]))
                        }
                    }
                    last = result
                    if let every = params.evalEvery, result.step % every == 0, let eval = object.evalExamples {
                        evalLoss = job.evaluate(eval).loss
                    }
                    if let every = params.saveEvery, result.step % every == 0, let outDir {
                        let directory = outDir.appendingPathComponent("checkpoint-\(result.step)")
                        try save(object, to: directory, field: "outDir")
                        checkpoints.append(.string(directory.path))
                    }
                    let elapsed = Date().timeIntervalSince(start)
                    let done = result.step - firstStep
                    let eta = elapsed / Double(done) * Double(total - result.step)
                    var fields: [(String, JSONValue)] = [
                        ("step", .int(Int64(result.step))), ("loss", .double(result.loss)), ("lr", .double(result.lr)),
                        ("tokensPerSecond", .double(Double(result.tokens) / max(result.seconds, 1e-9))),
                        ("peakBytes", .int(Int64(object.plannedBytes + object.model.bytes))), ("etaSeconds", .double(eta)),
                    ]
                    if let evalLoss { fields.append(("evalLoss", .double(evalLoss))) }
                    context.progress?.report(message: "step \(result.step)/\(total), loss \(String(format: "%.4f", result.loss))",
                                             percentage: 100 * Double(result.step) / Double(total), fields: fields)
                }
                if params.evalEvery != nil, let eval = object.evalExamples { evalLoss = job.evaluate(eval).loss }
                if let outDir {
                    let directory = outDir.appendingPathComponent(TrainingCheckpoints.finalName)
                    try save(object, to: directory, field: "outDir")
                    checkpoints.append(.string(directory.path))
                }
                return .object([("step", .int(Int64(job.completedSteps))), ("loss", last.map { .double($0.loss) } ?? .null),
                                ("evalLoss", evalLoss.map(JSONValue.double) ?? .null), ("checkpoints", .array(checkpoints))])
            }
        }

        router.register("train/save") { [unowned self] (params: TrainSaveParams, _) -> JSONValue in
            let object = try job(params.jobId)
            let directory = try PathParam.output(params.path, field: "path")
            let files = try object.exclusively { try save(object, to: directory) }
            return .object([("files", .array(files.map(JSONValue.string)))])
        }

        router.register("train/resume") { [unowned self] (params: TrainResumeParams, context) -> JSONValue in
            // An outDir of train/run resumes from its newest complete checkpoint.
            let given = try PathParam.existingDirectory(params.path, field: "path")
            let directory = try ErrorMapping.translating { try TrainingCheckpoints.resumable(given) }
            let state = try ErrorMapping.translating { try TrainingJob.readState(directory) }
            let loaded: LoadedModel
            if let modelId = params.modelId {
                loaded = try model(modelId)
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
            let dataset = try readDataset(DatasetParam(path: reference.path, format: reference.format, trainOnInputs: reference.trainOnInputs),
                                          field: "dataset", model: loaded)
            var settings = state.settings
            try Self.requireTrainable(dataset, field: "dataset", seqLen: settings.seqLen, packing: settings.packing)
            let adapterShape = state.adapter.map { LoRAAdapter(config: loaded.model.config, rank: $0.rank, alpha: $0.alpha, dropout: $0.dropout,
                                                                targets: Set($0.targets.compactMap(LoRATarget.init(rawValue:)))) }
            let plan = try planTraining(loaded: loaded, adapter: adapterShape, settings: &settings, checkpointing: settings.checkpointing ? .layer : .none)
            let handle = registry.newHandle(.job)
            try ledger.charge(Int64(plan.total), to: handle, breakdown: plan.breakdown)
            do {
                let examples = settings.packing ? dataset.examples : dataset.sequences(seqLen: settings.seqLen)
                let job = try ErrorMapping.translating { try TrainingJob.resume(from: directory, model: loaded.model, examples: examples) }
                let object = TrainingJobObject(handle: handle, job: job, model: loaded, adapterId: nil, dataset: reference,
                                               evalExamples: nil, plannedBytes: plan.total)
                registry.insert(object, as: .job)
                return .object([("jobId", .string(handle)), ("step", .int(Int64(job.completedSteps))), ("plan", plan.json),
                                ("path", .string(directory.path))])
            } catch {
                ledger.release(handle)
                throw error
            }
        }

        router.register("train/close") { [unowned self] (params: TrainCloseParams, _) -> JSONValue in
            let object = try job(params.jobId)
            let dtype = try Self.weightDType(params.dtype)
            guard params.keepModel == true else {
                if params.dtype != nil { throw RPCError.invalidParams(field: "dtype", "applies with keepModel: true") }
                try object.exclusively {
                    registry.remove(params.jobId, kind: .job)
                    ledger.release(params.jobId)
                }
                return .null
            }
            // A full-parameter job's weights become a model of their own (LoRAM's aligned carrier):
            // no copy; the job's gradients, moments and arena go back to the budget.
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
                registry.remove(params.jobId, kind: .job)
                ledger.release(params.jobId)
                try ledger.charge(Int64(model.byteCount), to: handle, breakdown: .object([("weights", .int(Int64(model.byteCount)))]))
                let source = object.model
                let loaded = source.derived(handle: handle, model: model, bytes: model.byteCount)
                registry.insert(loaded, as: .model)
                return .object([("modelId", .string(handle)), ("parameters", .int(Int64(model.parameterCount))),
                                ("bytes", .int(Int64(loaded.bytes))), ("config", loaded.configSummary)])
            }
        }
    }

    /// The adapter `id` names, which must belong to model `modelId`.
    func trainableAdapter(_ id: String, modelId: String) throws -> LoRAAdapter {
        let object: LiveObject
        do {
            object = try registry.lookup(id, kind: .adapter)
        } catch let error as RPCError {
            throw error.with("field", .string("adapterId"))
        }
        guard let adapter = object as? TrainableAdapterObject else { throw RPCError.internalError("adapter \(id) has no trainable weights") }
        guard adapter.modelId == modelId else {
            throw RPCError.invalidParams(field: "adapterId", "belongs to model \(adapter.modelId), not \(modelId)")
        }
        return adapter.adapter
    }

    /// The adapter in PEFT's layout, loadable by `adapter/load` and by PEFT on the same base.
    func exportAdapter(_ adapter: LoRAAdapter, model: LoadedModel, to directory: URL) throws -> [String] {
        try PEFTAdapterFile.save(adapter, to: directory, baseModelNameOrPath: model.source.path).map(\.path)
    }

    /// Writes the job's state and, for people and other tools, the trained result: the adapter in
    /// PEFT's layout (`adapter/`) or the full model in Hugging Face's (`model/`). The folder
    /// appears complete or not at all (a kill mid-save leaves the previous checkpoints as they
    /// were); `field` is the param a refused path is blamed on.
    @discardableResult
    func save(_ object: TrainingJobObject, to directory: URL, field: String = "path") throws -> [String] {
        do {
            let names = try AtomicDirectory.write(to: directory, rule: .trainingState) { folder -> [String] in
                try object.job.save(to: folder, modelPath: object.model.source.path, dataset: object.dataset)
                var names = [TrainingJob.parametersFile, TrainingJob.optimizerFile, TrainingJob.stateFile]
                if let adapter = object.job.adapter {
                    names += try exportAdapter(adapter, model: object.model, to: folder.appendingPathComponent("adapter"))
                        .map { "adapter/" + URL(fileURLWithPath: $0).lastPathComponent }
                } else {
                    let modelDirectory = folder.appendingPathComponent("model")
                    try object.job.weights.snapshot().save(to: modelDirectory)
                    names += [LlamaConfig.fileName, CheckpointDirectory.singleFileName].map { "model/" + $0 }
                    // The tokenizer travels with the weights (a GGUF original's, translated), so model/load of it reads text.
                    for (name, data) in try object.model.companionFiles() {
                        try AtomicFile.write(data, to: modelDirectory.appendingPathComponent(name))
                        names.append("model/" + name)
                    }
                }
                return names
            }
            return names.map { directory.appendingPathComponent($0).path }
        } catch let conflict as OutputConflict {
            throw ErrorMapping.refusal(conflict, field: field)
        } catch {
            throw ErrorMapping.rpc(error)
        }
    }

    /// A dataset a step can learn from: some example, some token, and some label a shifted loss
    /// counts. Without one, every step would "succeed" with loss 0 (eval/perplexity refuses the same).
    static func requireTrainable(_ dataset: Dataset, field: String, seqLen: Int, packing: Bool) throws {
        let examples = packing ? dataset.examples : dataset.sequences(seqLen: seqLen)
        if let problem = DataLoader.problem(examples: examples, mode: packing ? .pack : .truncate, seqLen: seqLen) {
            throw RPCError.invalidParams(field: field, "\(dataset.url.lastPathComponent) \(problem)")
        }
    }

    static func trainingSettings(_ p: TrainCreateParams) throws -> TrainingJob.Settings {
        guard p.seqLen >= 2 else { throw RPCError.invalidParams(field: "seqLen", "must be at least 2") }
        guard p.microBatch >= 1 else { throw RPCError.invalidParams(field: "microBatch", "must be at least 1") }
        guard p.steps >= 1 else { throw RPCError.invalidParams(field: "steps", "must be at least 1") }
        guard p.lr > 0, p.lr.isFinite else { throw RPCError.invalidParams(field: "lr", "must be a positive number") }
        var s = TrainingJob.Settings(seqLen: p.seqLen, microBatch: p.microBatch, steps: p.steps, lr: p.lr)
        if let g = p.gradAccum { guard g >= 1 else { throw RPCError.invalidParams(field: "gradAccum", "must be at least 1") }; s.gradAccum = g }
        if let schedule = p.schedule {
            guard let kind = LearningRateSchedule.Kind(rawValue: schedule) else {
                throw RPCError.invalidParams(field: "schedule", "must be cosine, linear or constant, got '\(schedule)'")
            }
            s.schedule = kind
        }
        if let w = p.warmupSteps { guard w >= 0 else { throw RPCError.invalidParams(field: "warmupSteps", "must be >= 0") }; s.warmupSteps = w }
        if let wd = p.weightDecay { guard wd >= 0 else { throw RPCError.invalidParams(field: "weightDecay", "must be >= 0") }; s.weightDecay = wd }
        if let m = p.maxGradNorm { guard m >= 0 else { throw RPCError.invalidParams(field: "maxGradNorm", "must be >= 0 (0 turns clipping off)") }; s.maxGradNorm = m > 0 ? m : nil }
        s.seed = p.seed ?? 0
        s.packing = p.packing ?? false
        s.frozen = p.freeze ?? []
        s.untieEmbeddings = p.untieEmbeddings ?? false
        // Within SizeLimits before the dataset is read or anything is planned (gradAccum sizes no
        // buffer but the batches a step draws).
        do {
            try Workload(kind: .train, microBatch: s.microBatch, seqLen: s.seqLen, gradAccum: s.gradAccum).checkSizes()
        } catch let error as SizeError {
            throw ErrorMapping.invalidParams(error, overflowField: "seqLen")
        }
        return s
    }
}
