import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Planning a training job: its step program under the budget, and the change that would make it
/// fit (MemoryPlanner's `PlanSearch` order, weighed with the job's own plan).
extension TrainingService {
    /// Every line as the job allocates it (`TrainingAllocations`, at jemalloc's size classes), so
    /// a run's jemalloc-measured peak stays under `total`.
    struct Plan {
        var weights, adapter, gradients, optimizer, activations, data, runtime: Int
        /// The step's transient buffers placed: the job's arena is made from this very placement.
        var placement: BestFitPlacement?
        var allocations: TrainingAllocations
        var total: Int { adapter + gradients + optimizer + activations + weights + data + runtime }
        var breakdown: TrainingBreakdown {
            TrainingBreakdown(weights: weights, adapter: adapter, gradients: gradients, optimizer: optimizer, activations: activations,
                              data: data, runtime: runtime)
        }
        var summary: TrainingPlanSummary { TrainingPlanSummary(peakBytes: total, breakdown: breakdown) }
    }

    /// The bytes a job will hold, from shapes alone; `auto` checkpointing turns layer checkpointing
    /// on only when the job would not fit the budget without it.
    /// `dataBytes`: what the job's rows hold (`TrainingData`), planned from the dataset.
    func plan(_ loaded: LoadedModel, adapter: LoRAAdapter?, settings: inout TrainingJob.Settings, checkpointing: CheckpointingChoice,
              dataBytes: Int = 0) throws -> Plan {
        if adapter == nil, loaded.model.isQuantized {
            throw RPCError.invalidParams(field: "adapterId", "model \(loaded.handle) is NF4, a frozen base: full-parameter training needs an f32/bf16/f16 model; give an adapterId to train LoRA on it")
        }
        switch checkpointing {
        case .none: settings.checkpointing = false
        case .layer: settings.checkpointing = true
        case .auto:
            let free = ledger.capBytes - ledger.usedBytes
            // A plan too large to count fits nothing; the one chosen is planned again below, and refused then.
            func fits(_ checkpointed: Bool) -> Bool {
                var candidate = settings
                candidate.checkpointing = checkpointed
                return (try? plan(loaded, adapter: adapter, settings: candidate, dataBytes: dataBytes)).map { Int64($0.total) <= free } ?? false
            }
            settings.checkpointing = !fits(false) && fits(true)
        }
        return try plan(loaded, adapter: adapter, settings: settings, dataBytes: dataBytes)
    }

    /// The plan of exactly these settings.
    func plan(_ loaded: LoadedModel, adapter: LoRAAdapter?, settings: TrainingJob.Settings, dataBytes: Int = 0) throws -> Plan {
        let config = loaded.model.config
        // The step runs in its planned arena: charge that arena's peak. Its sizes are checked
        // against SizeLimits and for overflow; only a plan that counts is charged.
        let placement: BestFitPlacement
        do {
            placement = try BestFitPlacement(TrainingJob.stepProgram(config: config, adapter: adapter, settings: settings).transientOnly())
        } catch let error as SizeError {
            throw ErrorMapping.invalidParams(error, overflowField: "seqLen") { $0 == "lora.r" ? "adapterId" : $0 }
        }
        // The planner's freeze rule, the one the job's gradient buffers follow. The model is loaded
        // and within SizeLimits.parameters: these products cannot overflow.
        let allocations = TrainingAllocations(shape: config.modelShape, lora: adapter.map { Workload.LoRA(r: $0.rank, targets: $0.targets) },
                                              microBatch: settings.microBatch, seqLen: settings.seqLen, arenaPeak: placement.peak,
                                              frozen: FrozenTensors(settings.frozen), untie: settings.untieEmbeddings,
                                              libraries: BLAS.threadedCallHeapBytes)
        return Plan(weights: allocations.weights, adapter: 0, gradients: allocations.gradients, optimizer: allocations.optimizer,
                    activations: allocations.arena, data: dataBytes, runtime: allocations.norms + allocations.step + allocations.libraries + allocations.bookkeeping,
                    placement: placement, allocations: allocations)
    }


    /// OverBudget's suggestion for a job: the first change, in `PlanSearch`'s order, that a job of
    /// this model can take (layer checkpointing, then halving the micro-batch and doubling
    /// gradAccum so the effective batch stays) and that fits the free budget; nil when none does.
    func suggestion(_ loaded: LoadedModel, adapter: LoRAAdapter?, settings: TrainingJob.Settings, dataBytes: Int = 0) -> BudgetSuggestion? {
        let free = ledger.capBytes - ledger.usedBytes
        let workload = Workload(kind: .train, microBatch: settings.microBatch, seqLen: settings.seqLen, gradAccum: settings.gradAccum,
                                checkpointing: settings.checkpointing, activationDType: settings.activationDType)
        // A job trains the model it was given on the rows it was given: changes to the base or the
        // sequences are memory/plan's to suggest, not a job's.
        let applicable: Set<String> = ["checkpointing", "microBatch", "gradAccum"]
        for candidate in PlanSearch.candidates(pruning: nil, workload: workload) where candidate.changes.allSatisfy({ applicable.contains($0.0) }) {
            var changed = settings
            changed.checkpointing = candidate.workload.checkpointing
            changed.microBatch = candidate.workload.microBatch
            changed.gradAccum = candidate.workload.gradAccum
            guard let plan = try? plan(loaded, adapter: adapter, settings: changed, dataBytes: dataBytes), Int64(plan.total) <= free else { continue }
            let changes: [(String, JSONValue)] = candidate.changes.map { name, _ in
                switch name {
                case "microBatch": return (name, .int(Int64(changed.microBatch)))
                case "gradAccum": return (name, .int(Int64(changed.gradAccum)))
                default: return (name, .string(changed.checkpointing ? "layer" : "none"))
                }
            }
            return BudgetSuggestion(changes: .object(changes), peakBytes: plan.total)
        }
        return nil
    }
}

/// An OverBudget suggestion: the settings to change, and the peak with them.
struct BudgetSuggestion: WireResult {
    var changes: JSONValue
    var peakBytes: Int
}

/// `checkpointing` as a training request gives it: off, every layer, or layers only when the job
/// would not fit the budget without.
enum CheckpointingChoice: String, CaseIterable {
    case none, layer, auto

    /// The request's value, InvalidParams naming `field` for any other.
    static func parse(_ value: String?, field: String = "checkpointing") throws -> CheckpointingChoice {
        guard let value else { return .none }
        guard let choice = CheckpointingChoice(rawValue: value) else {
            throw RPCError.invalidParams(field: field, "must be none, layer or auto, got '\(value)'")
        }
        return choice
    }
}
