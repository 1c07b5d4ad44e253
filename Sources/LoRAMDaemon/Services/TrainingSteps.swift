import Foundation
import RPC
import Runtime

/// A job's steps (`train/step`, `train/run`) and its checkpoints (`train/save`, `train/run`'s
/// saveEvery). One request uses a job at a time (`TrainingJobObject.exclusively`).
extension TrainingService {
    /// Up to `count` optimizer steps, stopping early at the job's last step.
    func step(_ object: TrainingJobObject, count: Int, context: RequestContext) throws -> TrainStepResult {
        guard count >= 1 else { throw RPCError.invalidParams(field: "steps", "must be at least 1") }
        return try object.exclusively {
            var losses: [Double] = []
            var last: TrainingJob.StepResult?
            var seconds = 0.0, tokens = 0
            for _ in 0..<count {
                guard !object.job.isFinished else {
                    if last == nil { throw RPCError.invalidParams(field: "jobId", "the job has run all its \(object.job.settings.steps) steps") }
                    break
                }
                try context.checkCancelled()
                let result = try object.job.runStep(checkpoint: context.checkCancelled)
                losses.append(result.loss)
                seconds += result.seconds
                tokens += result.tokens
                last = result
            }
            let result = last!
            return TrainStepResult(step: result.step, losses: losses, lr: result.lr, gradNorm: result.gradNorm,
                                   tokensPerSecond: Double(tokens) / max(seconds, 1e-9), peakBytes: object.plannedBytes + object.model.bytes,
                                   arena: object.arenaReport)
        }
    }

    /// The job to its end, with progress after every step, an evaluation every `evalEvery` steps
    /// and a checkpoint every `saveEvery` (and at the end) under `outDir`.
    func run(_ object: TrainingJobObject, evalEvery: Int?, saveEvery: Int?, outDir outDirPath: String?, context: RequestContext) throws -> TrainRunResult {
        if let n = evalEvery, n < 1 { throw RPCError.invalidParams(field: "evalEvery", "must be at least 1") }
        if let n = saveEvery, n < 1 { throw RPCError.invalidParams(field: "saveEvery", "must be at least 1") }
        if saveEvery != nil && outDirPath == nil { throw RPCError.invalidParams(field: "outDir", "is required with saveEvery") }
        let outDir = try outDirPath.map { try PathParam.output($0, field: "outDir", rule: .outputFolder) }
        return try object.exclusively {
            let job = object.job
            let total = job.settings.steps
            let start = Date()
            let firstStep = job.completedSteps
            var last: TrainingJob.StepResult?
            var evalLoss: Double?
            var checkpoints: [String] = []
            context.progress?.report(message: "training \(total - firstStep) steps", percentage: 100 * Double(firstStep) / Double(total))
            while !job.isFinished {
                // Checked between steps and, inside one, between layers.
                let cancelled = {
                    RPCError.requestCancelled.with("partial", .object([("step", .int(Int64(job.completedSteps))),
                                                                       ("loss", last.map { .double($0.loss) } ?? .null)]))
                }
                if context.isCancelled { throw cancelled() }
                let result = try job.runStep { if context.isCancelled { throw cancelled() } }
                last = result
                if let every = evalEvery, result.step % every == 0, let eval = object.evalExamples {
                    evalLoss = job.evaluate(eval).loss
                }
                if let every = saveEvery, result.step % every == 0, let outDir {
                    let directory = outDir.appendingPathComponent("checkpoint-\(result.step)")
                    try save(object, to: directory, field: "outDir")
                    checkpoints.append(directory.path)
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
            if evalEvery != nil, let eval = object.evalExamples { evalLoss = job.evaluate(eval).loss }
            if let outDir {
                let directory = outDir.appendingPathComponent(TrainingCheckpoints.finalName)
                try save(object, to: directory, field: "outDir")
                checkpoints.append(directory.path)
            }
            return TrainRunResult(step: job.completedSteps, loss: last?.loss, evalLoss: evalLoss, checkpoints: checkpoints)
        }
    }

    /// `train/save`: the job's state, as `save(_:to:field:)` writes it, at `path`.
    func save(_ object: TrainingJobObject, path: String) throws -> FilesResult {
        let directory = try PathParam.output(path, field: "path", rule: .trainingState)
        return FilesResult(files: try object.exclusively { try save(object, to: directory) })
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
                    names += try PEFTAdapterFile.save(adapter, to: folder.appendingPathComponent("adapter"), baseModelNameOrPath: object.model.source.path)
                        .map { "adapter/" + $0.lastPathComponent }
                } else {
                    let modelDirectory = folder.appendingPathComponent("model")
                    try object.job.weights.snapshot().save(to: modelDirectory)
                    names += [ModelConfig.fileName, CheckpointDirectory.singleFileName].map { "model/" + $0 }
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
}
