import Foundation
import RPC

/// What the `train/*` methods answer, field for field as docs/rpc.md gives them.

/// The bytes a job holds, by kind (memory/plan's and OverBudget's `breakdown`).
struct TrainingBreakdown: WireResult {
    /// Each as jemalloc reserves it (`TrainingAllocations`): activations is the step arena's size
    /// class, data the rows the job holds, runtime the norms, a step's batches and the bookkeeping bound.
    var weights, adapter, gradients, optimizer, activations, data, runtime: Int
}

/// A job's plan as train/resume answers it.
struct TrainingPlanSummary: WireResult {
    var peakBytes: Int
    var breakdown: TrainingBreakdown
}

/// A job's plan as train/create answers it: the summary, and the settings the plan chose.
struct TrainingCreatedPlan: WireResult {
    var peakBytes: Int
    var breakdown: TrainingBreakdown
    /// As planned: cut to the longest sequence of the data when not packing.
    var seqLen: Int
    var longestSequence: Int
    /// "layer" or "none" (what `auto` chose).
    var checkpointing: String
    /// "f32" or "bf16": how the layers keep their activations.
    var activationDtype: String
    /// "f32" or "bf16": how the frozen weights' products run on this machine.
    var matmulDtype: String
}

struct TrainCreateResult: WireResult {
    var jobId: String
    var plan: TrainingCreatedPlan
    var parameters: Int
    var examples: Int
    var warnings: [String]
}

struct TrainResumeResult: WireResult {
    var jobId: String
    var step: Int
    var plan: TrainingPlanSummary
    var path: String
}

/// The step's arena: the planned peak, its lower bound, and the size jemalloc reports for the
/// arena's region (sallocx: the planned peak rounded up to jemalloc's size class).
struct ArenaReport: WireResult {
    var plannedBytes: Int
    var lowerBoundBytes: Int
    var measuredBytes: Int
}

struct TrainStepResult: WireResult {
    var step: Int
    var losses: [Double]
    var lr: Double
    var gradNorm: Double
    var tokensPerSecond: Double
    var peakBytes: Int
    var arena: ArenaReport?
}

struct TrainRunResult: WireResult {
    var step: Int
    var loss: Double?
    var evalLoss: Double?
    var checkpoints: [String]
}

/// The files a save wrote; `warnings` (model/save to GGUF only, else absent) says what was left out.
struct FilesResult: WireResult {
    var files: [String]
    var warnings: [String]? = nil

    private enum CodingKeys: String, CodingKey { case files, warnings }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(files, forKey: .files)
        if let warnings { try c.encode(warnings, forKey: .warnings) }
    }
}

/// A model made from another (train/close with keepModel, adapter/merge).
struct DerivedModelResult: WireResult {
    var modelId: String
    var parameters: Int
    var bytes: Int
    var config: JSONValue
}

/// A method that answers `null` or a result.
extension Optional: WireResult where Wrapped: WireResult {}
