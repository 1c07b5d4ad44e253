import Foundation
import MemoryPlanner

/// A training run: the model's trainable tensors (a LoRA adapter, or every unfrozen base tensor),
/// AdamW, a learning-rate schedule and a data loader, advanced one optimizer step at a time. Each
/// step accumulates `gradAccum` micro-batches, normalised by the labelled tokens of all of them
/// (transformers' `num_items_in_batch`), clips the global norm, and steps the optimizer at the
/// schedule's rate. `save` and `resume` carry the trainable tensors, the optimizer moments, the
/// step and the data position, so a resumed run continues bit for bit.
public final class TrainingJob: @unchecked Sendable {
    public struct Settings: Codable, Equatable, Sendable {
        public var seqLen: Int
        public var microBatch: Int
        public var gradAccum = 1
        public var steps: Int
        public var lr: Double
        /// "cosine", "linear" or "constant", with warmup, as transformers defines them.
        public var schedule = LearningRateSchedule.Kind.constant
        public var warmupSteps = 0
        /// transformers' default is 0; norm weights never decay.
        public var weightDecay = 0.0
        /// transformers' default 1.0; nil turns clipping off.
        public var maxGradNorm: Double? = 1.0
        public var checkpointing = false
        /// bf16: the larger slots of each layer are kept in 16 bits for the backward (no effect
        /// with checkpointing, which keeps only the layer inputs, in fp32).
        public var activationDType = Workload.ActivationDType.f32
        /// bf16: the frozen weights' products of several rows in bf16 with fp32 sums (AMX).
        public var matmulDType = MatmulDType.f32
        public var seed: UInt64 = 0
        /// Rows are filled by packing examples end to end instead of truncating each.
        public var packing = false
        /// Full-parameter training: tensors whose name contains one of these stay frozen.
        public var frozen: [String] = []
        /// Full-parameter training of a semi-structured or unstructured carrier: weights of the
        /// decoder linears that start at zero stay zero (`ZeroMask`), so alignment keeps the pruning.
        public var keepZeros = false
        /// Full-parameter training of a tied model: train the input embedding as a tensor of its
        /// own and keep the output head as the model's (frozen); the result is untied.
        public var untieEmbeddings = false
        public var beta1 = 0.9
        public var beta2 = 0.999
        public var eps = 1e-8

        public init(seqLen: Int, microBatch: Int, steps: Int, lr: Double) {
            self.seqLen = seqLen
            self.microBatch = microBatch
            self.steps = steps
            self.lr = lr
        }

        private enum CodingKeys: String, CodingKey {
            case seqLen, microBatch, gradAccum, steps, lr, schedule, warmupSteps, weightDecay, maxGradNorm, checkpointing, seed,
                 packing, frozen, keepZeros, untieEmbeddings, beta1, beta2, eps, activationDType, matmulDType
        }

        /// Reads state.json; `keepZeros`, `activationDType` and `matmulDType` came later, so states saved before them still resume.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(seqLen: try c.decode(Int.self, forKey: .seqLen), microBatch: try c.decode(Int.self, forKey: .microBatch),
                      steps: try c.decode(Int.self, forKey: .steps), lr: try c.decode(Double.self, forKey: .lr))
            gradAccum = try c.decode(Int.self, forKey: .gradAccum)
            schedule = try c.decode(LearningRateSchedule.Kind.self, forKey: .schedule)
            warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
            weightDecay = try c.decode(Double.self, forKey: .weightDecay)
            maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm)
            checkpointing = try c.decode(Bool.self, forKey: .checkpointing)
            activationDType = try c.decodeIfPresent(Workload.ActivationDType.self, forKey: .activationDType) ?? .f32
            matmulDType = try c.decodeIfPresent(MatmulDType.self, forKey: .matmulDType) ?? .f32
            seed = try c.decode(UInt64.self, forKey: .seed)
            packing = try c.decode(Bool.self, forKey: .packing)
            frozen = try c.decode([String].self, forKey: .frozen)
            keepZeros = try c.decodeIfPresent(Bool.self, forKey: .keepZeros) ?? false
            untieEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .untieEmbeddings) ?? false
            beta1 = try c.decode(Double.self, forKey: .beta1)
            beta2 = try c.decode(Double.self, forKey: .beta2)
            eps = try c.decode(Double.self, forKey: .eps)
        }

        var learningRateSchedule: LearningRateSchedule {
            switch schedule {
            case .cosine: return .cosine(warmupSteps: warmupSteps, totalSteps: steps)
            case .linear: return .linear(warmupSteps: warmupSteps, totalSteps: steps)
            case .constant: return .constant(warmupSteps: warmupSteps)
            }
        }
    }

    public struct StepResult: Sendable {
        /// 1-based index of the optimizer step just taken.
        public var step: Int
        public var loss: Double
        public var lr: Double
        /// Global gradient norm before clipping.
        public var gradNorm: Double
        public var tokens: Int
        public var seconds: Double
    }

    public let settings: Settings
    public let weights: StepWeights
    public let adapter: LoRAAdapter?
    public let gradients: GradientBuffers
    public let step: TrainingStep
    public let optimizer: AdamW
    /// The pruned weights held at zero (`settings.keepZeros`, full-parameter training only).
    public let zeroMask: ZeroMask?
    public private(set) var loader: DataLoader
    public private(set) var completedSteps = 0
    private let schedule: LearningRateSchedule

    /// LoRA training when `adapter` is given (the model stays untouched); full-parameter training
    /// of an fp32 copy of the model otherwise. `placement`: the step program's transient part
    /// already placed (the daemon places it to charge the budget); nil places it here. Throws when
    /// the program cannot be placed or its arena made.
    public init(model: DecoderModel, adapter: LoRAAdapter?, examples: [Dataset.Example], settings: Settings,
                placement: BestFitPlacement? = nil) throws {
        self.settings = settings
        self.adapter = adapter
        weights = StepWeights(model: model, copy: adapter == nil, untie: settings.untieEmbeddings)
        gradients = adapter.map(GradientBuffers.init(adapter:)) ?? GradientBuffers(weights: weights, frozen: Set(settings.frozen))
        // The step runs in its planned arena.
        let arena = try placement.map { try PlannedBuffers(placement: $0) }
            ?? PlannedBuffers(Self.stepProgram(config: model.config, adapter: adapter, settings: settings))
        step = TrainingStep(weights: weights, adapter: adapter, gradients: gradients, microBatch: settings.microBatch,
                            seqLen: settings.seqLen, checkpointing: settings.checkpointing,
                            activations: settings.activationDType, matmul: settings.matmulDType, arena: arena)
        optimizer = AdamW(tensors: gradients.entries.map {
            AdamW.Tensor(name: $0.name, values: $0.parameter, gradients: $0.gradient, count: $0.count, decays: $0.decays)
        }, settings: AdamW.Settings(lr: settings.lr, beta1: settings.beta1, beta2: settings.beta2, eps: settings.eps,
                                    weightDecay: settings.weightDecay))
        loader = DataLoader(examples: examples, mode: settings.packing ? .pack : .truncate, microBatch: settings.microBatch,
                            seqLen: settings.seqLen, seed: settings.seed, padId: model.config.eosTokenIds.first ?? 0)
        schedule = settings.learningRateSchedule
        zeroMask = settings.keepZeros && adapter == nil ? ZeroMask(gradients) : nil
    }

    /// The description of one step of this job, which the planner places and the step runs in.
    public static func stepProgram(config: ModelConfig, adapter: LoRAAdapter?, settings: Settings) throws -> StepProgram {
        try StepProgramBuilder.trainingStep(config.modelShape, Workload(
            kind: .train, microBatch: settings.microBatch, seqLen: settings.seqLen,
            lora: adapter.map { Workload.LoRA(r: $0.rank, targets: $0.targets) }, checkpointing: settings.checkpointing,
            activationDType: settings.activationDType))
    }

    public var isFinished: Bool { completedSteps >= settings.steps }

    /// One optimizer step over `gradAccum` micro-batches, not to be cancelled.
    public func runStep() -> StepResult { runStep(checkpoint: {}) }

    /// One optimizer step over `gradAccum` micro-batches. `checkpoint` runs between layers; what
    /// it throws (a cancellation) ends the step before the optimizer, with the data position as it
    /// was, so the job goes on as if the step had not started.
    public func runStep(checkpoint: () throws -> Void) rethrows -> StepResult {
        let start = DispatchTime.now().uptimeNanoseconds
        gradients.zero()
        // The loss is normalised by the labelled tokens of all gradAccum micro-batches, known only
        // after drawing them: a first pass on a copy of the loader counts them, so only one
        // micro-batch (planned) is held at a time, however large gradAccum is.
        var counter = loader
        var labelled = 0
        for _ in 0..<settings.gradAccum { labelled += counter.next().lossTokens }
        let normalizer = max(1, labelled)
        var lossSum = 0.0
        let position = loader
        do {
            for index in 0..<settings.gradAccum {
                let batch = loader.next()
                let seed = (adapter?.dropout ?? 0) > 0 ? Self.dropoutSeed(settings.seed, step: completedSteps, micro: index) : nil
                lossSum += try step.run(ids: batch.ids, labels: batch.labels, normalizer: normalizer, dropoutSeed: seed,
                                        checkpoint: checkpoint).lossSum
            }
        } catch {
            loader = position
            throw error
        }
        zeroMask?.maskGradients()
        let buffers = gradients.entries.map { UnsafeMutableBufferPointer(start: $0.gradient, count: $0.count) }
        let norm: Float
        if let maxNorm = settings.maxGradNorm {
            norm = GradientClipping.clip(buffers, maxNorm: maxNorm)
        } else {
            norm = GradientClipping.totalNorm(buffers.map { UnsafeBufferPointer($0) })
        }
        let lr = schedule.lr(base: settings.lr, step: completedSteps)
        if let adapter { adapter.access.writing { optimizer.step(lr: lr) } } else { optimizer.step(lr: lr) }
        zeroMask?.apply()
        completedSteps += 1
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return StepResult(step: completedSteps, loss: lossSum / Double(normalizer), lr: lr, gradNorm: Double(norm),
                          tokens: settings.gradAccum * settings.microBatch * settings.seqLen, seconds: seconds)
    }

    /// Mean loss over `examples` (truncated to seqLen, evaluated in micro-batches), no dropout.
    public func evaluate(_ examples: [Dataset.Example]) -> (loss: Double, tokens: Int) {
        var total = 0.0, count = 0
        for batch in DataLoader.singlePass(examples: examples, mode: .truncate, microBatch: settings.microBatch, seqLen: settings.seqLen) {
            let (sum, n) = step.loss(ids: batch.ids, labels: batch.labels)
            total += sum
            count += n
        }
        return (count > 0 ? total / Double(count) : .nan, count)
    }

    static func dropoutSeed(_ seed: UInt64, step: Int, micro: Int) -> UInt64 {
        var random = Xoshiro256StarStar(seed: seed ^ UInt64(step) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(micro) &* 0xD6E8_FEB8_6659_FD93)
        return random.next()
    }

    // MARK: Save and resume

    /// What `state.json` records.
    public struct SavedState: Codable, Sendable {
        public var format = "loramd-training-state"
        public var version = 1
        public var settings: Settings
        public var completedSteps: Int
        public var optimizerStep: Int
        public var position: DataLoader.Position
        public var mode: String
        public var adapter: AdapterShape?
        public var model: String
        public var dataset: DatasetReference?

        public struct AdapterShape: Codable, Sendable {
            public var rank: Int
            public var alpha: Double
            public var dropout: Double
            public var targets: [String]
        }

        public struct DatasetReference: Codable, Sendable {
            public var path: String
            public var format: String
            public var trainOnInputs: Bool
            public init(path: String, format: String, trainOnInputs: Bool) {
                self.path = path
                self.format = format
                self.trainOnInputs = trainOnInputs
            }
        }
    }

    public static let parametersFile = "parameters.safetensors"
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "state.json"

    /// Writes the trainable tensors, the optimizer moments and the state, each file under a
    /// temporary name first.
    public func save(to directory: URL, modelPath: String, dataset: SavedState.DatasetReference?) throws {
        try DurableFileSystem.makeDirectories(directory)
        let entries = gradients.entries
        try SafetensorsWriter().write(entries.map { entry in
            SafetensorsWriter.Entry(name: entry.name, dtype: .f32, shape: [entry.count]) { buffer in
                buffer.baseAddress!.copyMemory(from: entry.parameter, byteCount: entry.count * 4)
            }
        }, to: directory.appendingPathComponent(Self.parametersFile))
        let state = optimizer.state
        var moments: [SafetensorsWriter.Entry] = []
        for moment in state.moments {
            moments.append(.floats("\(moment.name).exp_avg", moment.expAvg, shape: [moment.expAvg.count]))
            moments.append(.floats("\(moment.name).exp_avg_sq", moment.expAvgSq, shape: [moment.expAvgSq.count]))
        }
        try SafetensorsWriter().write(moments, to: directory.appendingPathComponent(Self.optimizerFile))
        let saved = SavedState(settings: settings, completedSteps: completedSteps, optimizerStep: state.step, position: loader.position,
                               mode: adapter == nil ? "full" : "lora",
                               adapter: adapter.map { SavedState.AdapterShape(rank: $0.rank, alpha: $0.alpha, dropout: $0.dropout,
                                                                               targets: $0.targets.map(\.rawValue).sorted()) },
                               model: modelPath, dataset: dataset)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(saved), to: directory.appendingPathComponent(Self.stateFile))
    }

    public static func readState(_ directory: URL) throws -> SavedState {
        let data = try FormatError.contents(of: stateFile, in: directory)
        do {
            let state = try JSONDecoder().decode(SavedState.self, from: data)
            guard state.format == "loramd-training-state", state.version == 1 else {
                throw FormatError(file: stateFile, "not a loramd training state of version 1")
            }
            if let problem = state.problem { throw FormatError(file: stateFile, problem) }
            // The sizes it states within SizeLimits before anything (an adapter, a plan) is sized by them.
            do {
                try Workload(kind: .train, microBatch: state.settings.microBatch, seqLen: state.settings.seqLen,
                             gradAccum: state.settings.gradAccum, lora: state.adapter.map { .init(r: $0.rank, targets: []) }).checkSizes()
            } catch let error as SizeError {
                guard case .overLimit(let field, _, _) = error else { throw FormatError(file: stateFile, "\(error)") }
                throw FormatError(file: stateFile, "\(field == "lora.r" ? "adapter.rank" : "settings.\(field)") \(error.detail)")
            }
            return state
        } catch let error as FormatError {
            throw error
        } catch {
            throw FormatError(file: stateFile, "not a valid training state: \(error)")
        }
    }

    /// A job continuing the one saved in `directory`, on `model` (the same base it trained on)
    /// and `examples` (the same dataset).
    public static func resume(from directory: URL, model: DecoderModel, examples: [Dataset.Example]) throws -> TrainingJob {
        let state = try readState(directory)
        var adapter: LoRAAdapter?
        if let shape = state.adapter {
            let targets = Set(shape.targets.compactMap(LoRATarget.init(rawValue:)))
            adapter = LoRAAdapter(config: model.config, rank: shape.rank, alpha: shape.alpha, dropout: shape.dropout, targets: targets)
        }
        let job = try TrainingJob(model: model, adapter: adapter, examples: examples, settings: state.settings)
        let parameters = try SafetensorsFile(url: directory.appendingPathComponent(parametersFile))
        let moments = try SafetensorsFile(url: directory.appendingPathComponent(optimizerFile))
        func read(_ file: SafetensorsFile, _ name: String, count: Int) throws -> [Float] {
            guard let info = file.tensors[name], info.dtype == .f32, info.elementCount == count else {
                throw FormatError(file: file.fileName, "tensor \(name) is missing or is not \(count) fp32 values")
            }
            return Array(UnsafeBufferPointer(start: file.bytes(of: info).baseAddress!.assumingMemoryBound(to: Float.self), count: count))
        }
        var restored: [AdamW.State.Moments] = []
        for entry in job.gradients.entries {
            let values = try read(parameters, entry.name, count: entry.count)
            entry.parameter.update(from: values, count: entry.count)
            restored.append(.init(name: entry.name, expAvg: try read(moments, "\(entry.name).exp_avg", count: entry.count),
                                  expAvgSq: try read(moments, "\(entry.name).exp_avg_sq", count: entry.count)))
        }
        do {
            try job.optimizer.restore(.init(step: state.optimizerStep, moments: restored))
        } catch {
            throw FormatError(file: optimizerFile, "\(error)")
        }
        job.completedSteps = state.completedSteps
        if let problem = job.loader.problem(position: state.position) {
            throw FormatError(file: stateFile, "\(problem); resume with the dataset this state was saved with")
        }
        job.loader = DataLoader(examples: examples, mode: state.settings.packing ? .pack : .truncate, microBatch: state.settings.microBatch,
                                seqLen: state.settings.seqLen, seed: state.settings.seed, padId: model.config.eosTokenIds.first ?? 0,
                                position: state.position)
        return job
    }
}
