import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `loram/run` (the pipeline itself is `runPipeline`, Services/LoRAMPipeline.swift): its params,
/// and on failure everything the pipeline made is closed and unloaded again, newest first.
extension Daemon {
    /// Decoded in one pass (PipelineParams.swift): each stage's part is checked as its own method
    /// decodes it, so an ill-typed or oversized field anywhere is InvalidParams naming it
    /// (`eval.seqLen`, `train.lora.r`) before anything is loaded.
    struct LoramRunParams: Decodable {
        var path: String
        var dtype: String?
        var prune: JSONValue?
        /// A saved carrier (`{path, dtype?}`) to start from instead of pruning.
        var carrier: JSONValue?
        var align: JSONValue?
        /// `false`, or `{dataset?, seqLen?, maxSamples?}`: where the carrier's distance is measured.
        var diagnostics: JSONValue?
        /// Stop before training when the carrier is far from the original.
        var stopIfFar: Bool?
        var quantize: JSONValue?
        var train: JSONValue
        var recover: JSONValue?
        /// `eval`: a dataset, a list of them, or `{datasets, seqLen?, maxSamples?}`, as decoded.
        var eval: [EvalDataset]
        var outDir: String
    }

    /// What the pipeline has made so far, unloaded in reverse if it fails.
    final class PipelineObjects {
        var models: [String] = []
        var adapters: [String] = []
        var jobs: [String] = []
    }

    func registerPipeline() {
        router.register("loram/run") { [unowned self] (params: LoramRunParams, context) -> LoRAMRunResult in
            let made = PipelineObjects()
            do {
                return try runPipeline(params, context: context, made: made)
            } catch {
                let quiet = context.withoutProgress()
                for job in made.jobs.reversed() { _ = try? training.close(job, keepModel: false, dtype: nil) }
                for adapter in made.adapters.reversed() { _ = try? adapters.unload(AdapterRef(adapterId: adapter), context: quiet) }
                for model in made.models.reversed() { _ = try? models.unload(ModelRef(modelId: model), context: quiet) }
                throw error
            }
        }
    }
}
