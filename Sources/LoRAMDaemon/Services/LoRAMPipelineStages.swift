import Foundation
import MemoryPlanner
import RPC
import Runtime

/// The `loram/run` pipeline's stage helpers: stepping a job with progress, loading a saved
/// carrier, the full-model plan it is compared with, the reductions and the verdict.
extension Daemon {
    /// The paper's parameter reduction of a carrier loaded from disk (model/prune's accounting).
    static func paperParameterReduction(original: LoadedModel, carrier: LoadedModel) -> Double? {
        guard let manifest = carrier.model.pruning,
              let accounting = try? ParameterAccounting(original.model.config.modelShape,
                                                        pruning: manifest.method.pruning(ratio: manifest.ratio, layers: manifest.layers.map { $0[0]..<$0[1] }))
        else { return nil }
        return accounting.loramReduction
    }

    /// `carrier: {path}`: a carrier saved by model/save (or an earlier loram/run's outDir/carrier),
    /// which must have been pruned from a model of the original's shapes.
    func loadSavedCarrier(_ value: JSONValue, original: LoadedModel, dtype: String?, context: RequestContext) throws -> String {
        guard let path = value["path"]?.stringValue ?? value.stringValue else {
            throw RPCError.invalidParams(field: "path", "must be the folder of a saved carrier, e.g. an earlier run's outDir/carrier")
        }
        let id = try models.load(LoadParams(path: path, dtype: value["dtype"]?.stringValue ?? dtype), context: context).modelId
        let carrier = try model(id)
        func refuse(_ why: String) -> RPCError {
            _ = try? models.unload(ModelRef(modelId: id), context: context)
            return RPCError.invalidParams(field: "path", why)
        }
        guard let manifest = carrier.model.pruning else { throw refuse("\(path) is not a pruned model (no \(PruningManifest.fileName)); prune instead") }
        let expected = manifest.originalConfig(of: carrier.model.config).modelShape
        guard expected == original.model.config.modelShape else {
            throw refuse("\(path) was not pruned from a model of the original's shapes: \(Self.shapeDifference(original.model.config.modelShape, expected))")
        }
        return id
    }

    /// The recovered adapter's effect on the original against the untuned original, in words.
    static func verdict(before: Double, after: Double, on what: String, heldOut: Bool, diagnosis: JSONValue) -> JSONValue {
        let change = (after - before) / before
        let percent = String(format: "%.1f%%", abs(change) * 100)
        let numbers = String(format: "perplexity %.2f → %.2f on %@", before, after, what)
        let effect: String, text: String
        if change < -0.005 {
            effect = "improved"
            text = "The recovered adapter improves the original by \(percent) (\(numbers))."
        } else if change > 0.005 {
            effect = "worse"
            var advice = " Do not use this adapter"
            if let level = diagnosis["verdict"]?["level"]?.stringValue, level != "close" {
                advice += "; the carrier was \(level) from the original"
                if let first = diagnosis["verdict"]?["suggestions"]?.arrayValue?.first?.stringValue { advice += ". \(first)" }
            }
            text = "The recovered adapter makes the original worse, by \(percent) (\(numbers)).\(advice)."
        } else {
            effect = "unchanged"
            text = "The recovered adapter leaves the original about as it was (\(numbers))."
        }
        return .object([("effect", .string(effect)), ("originalPerplexity", .double(before)), ("recoveredPerplexity", .double(after)),
                         ("changePercent", .double(change * 100)), ("heldOut", .bool(heldOut)), ("text", .string(text))])
    }

    static func dtypeName(_ dtype: TensorDType) -> String? { weightDTypes.first { $0.value == dtype }?.key }

    /// A stage's optimizer steps: their losses, tokens and seconds.
    struct StepsRun {
        var losses: [Double] = []
        var tokens = 0
        var seconds = 0.0
        var tokensPerSecond: Double { Double(tokens) / max(seconds, 1e-9) }

        func summary(extra: [(String, JSONValue)]) -> JSONValue {
            .object([("steps", .int(Int64(losses.count))), ("firstLoss", losses.first.map(JSONValue.double) ?? .null),
                     ("lastLoss", losses.last.map(JSONValue.double) ?? .null), ("tokens", .int(Int64(tokens))),
                     ("seconds", .double(seconds)), ("tokensPerSecond", .double(tokensPerSecond))] + extra)
        }
    }

    /// Steps a job to its end one step at a time (as `train/step` does), reporting each as progress
    /// (with tokens/s, as train/run's reports); the losses and throughput.
    func runSteps(_ object: TrainingJobObject, context: RequestContext, stageName: String, percentage: (Double) -> Double,
                  afterStep: () -> Void = {}) throws -> StepsRun {
        let settings = object.job.settings
        var run = StepsRun()
        while !object.job.isFinished {
            try context.checkCancelled()
            let start = Date()
            let result = try training.step(object, count: 1, context: context.withoutProgress())
            run.seconds += Date().timeIntervalSince(start)
            run.tokens += settings.gradAccum * settings.microBatch * settings.seqLen
            afterStep()
            guard let loss = result.losses.last else { continue }
            run.losses.append(loss)
            let tokensPerSecond = result.tokensPerSecond
            let done = Double(object.job.completedSteps) / Double(max(1, settings.steps))
            let eta = run.seconds / Double(max(1, run.losses.count)) * Double(settings.steps - object.job.completedSteps)
            context.progress?.report(message: "\(stageName) step \(object.job.completedSteps)/\(settings.steps), loss \(String(format: "%.4f", loss)), \(Int(tokensPerSecond)) tokens/s",
                                     percentage: percentage(done), fields: [("stage", .string(stageName)), ("step", .int(Int64(object.job.completedSteps))),
                                              ("steps", .int(Int64(settings.steps))), ("loss", .double(loss)),
                                              ("tokensPerSecond", .double(tokensPerSecond)), ("etaSeconds", .double(eta))])
        }
        return run
    }

    /// The same LoRA job planned on the original model (no allocation): what LoRAM is measured against.
    /// `dataBytes`: the rows the job holds, the same on either model.
    func fullModelLoRAPlan(original: LoadedModel, adapter: LoRAAdapter, settings: TrainingJob.Settings, dataBytes: Int) throws -> Int {
        let shape = LoRAAdapter(config: original.model.config, rank: adapter.rank, alpha: adapter.alpha, targets: adapter.targets)
        return try training.plan(original, adapter: shape, settings: settings, dataBytes: dataBytes).total
            + original.bytes + TrainingAllocations.adapterPlannedBytes(original.model.config.modelShape, Workload.LoRA(r: shape.rank, targets: shape.targets))
    }
}
