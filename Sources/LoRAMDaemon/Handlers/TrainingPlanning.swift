import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Planning a training job: its step program under the budget, the change that would make it
/// fit, and the frozen parameters a full-parameter plan leaves out.
extension Daemon {
    /// The first of layer checkpointing, then halving the micro-batch (doubling gradAccum so the
    /// effective batch stays), that makes the job fit the free budget; `null` when none does.
    func trainingSuggestion(loaded: LoadedModel, adapter: LoRAAdapter?, settings: TrainingJob.Settings) -> JSONValue {
        let free = ledger.capBytes - ledger.usedBytes
        var candidate = settings
        var changes: [(String, JSONValue)] = []
        func fits(_ s: TrainingJob.Settings) -> Int? {
            var copy = s
            guard let plan = try? planTraining(loaded: loaded, adapter: adapter, settings: &copy, checkpointing: s.checkpointing ? .layer : .none),
                  Int64(plan.total) <= free else { return nil }
            return plan.total
        }
        while true {
            if !candidate.checkpointing {
                candidate.checkpointing = true
                changes.append(("checkpointing", .string("layer")))
            } else if candidate.microBatch > 1 {
                candidate.microBatch = (candidate.microBatch + 1) / 2
                candidate.gradAccum *= 2
                changes.removeAll { $0.0 == "microBatch" || $0.0 == "gradAccum" }
                changes += [("microBatch", .int(Int64(candidate.microBatch))), ("gradAccum", .int(Int64(candidate.gradAccum)))]
            } else {
                return .null
            }
            if let bytes = fits(candidate) {
                return .object([("changes", .object(changes)), ("peakBytes", .int(Int64(bytes)))])
            }
        }
    }

    struct TrainingPlan {
        var weights, adapter, gradients, optimizer, activations: Int
        /// The step's transient buffers placed: the job's arena is made from this very placement.
        var placement: BestFitPlacement?
        var total: Int { adapter + gradients + optimizer + activations + weights }
        var breakdown: JSONValue {
            .object([("weights", .int(Int64(weights))), ("adapter", .int(Int64(adapter))), ("gradients", .int(Int64(gradients))),
                     ("optimizer", .int(Int64(optimizer))), ("activations", .int(Int64(activations)))])
        }
        var json: JSONValue { json(extra: []) }
        func json(extra: [(String, JSONValue)]) -> JSONValue { .object([("peakBytes", .int(Int64(total))), ("breakdown", breakdown)] + extra) }
    }

    /// The bytes a job will hold, from shapes alone; `auto` checkpointing turns layer checkpointing
    /// on only when the job would not fit the budget without it.
    func planTraining(loaded: LoadedModel, adapter: LoRAAdapter?, settings: inout TrainingJob.Settings, checkpointing: CheckpointingChoice) throws -> TrainingPlan {
        if adapter == nil, loaded.model.isQuantized {
            throw RPCError.invalidParams(field: "adapterId", "model \(loaded.handle) is NF4, a frozen base: full-parameter training needs an f32/bf16/f16 model; give an adapterId to train LoRA on it")
        }
        let config = loaded.model.config
        func plan(_ checkpointed: Bool) throws -> TrainingPlan {
            // The step runs in its planned arena: charge that arena's peak. Its sizes are checked
            // against SizeLimits and for overflow; only a plan that counts is charged.
            var candidate = settings
            candidate.checkpointing = checkpointed
            let placement: BestFitPlacement
            do {
                placement = try BestFitPlacement(TrainingJob.stepProgram(config: config, adapter: adapter, settings: candidate).transientOnly())
            } catch let error as SizeError {
                throw ErrorMapping.invalidParams(error, overflowField: "seqLen") { $0 == "lora.r" ? "adapterId" : $0 }
            }
            // The model is loaded and within SizeLimits.parameters: these products cannot overflow.
            let trainable = adapter?.parameterCount ?? (loaded.model.parameterCount - settings.frozenParameterCount(config))
            return TrainingPlan(weights: adapter == nil ? loaded.model.parameterCount * 4 : 0, adapter: 0, gradients: trainable * 4,
                                optimizer: AdamW.stateBytes(parameters: trainable), activations: placement.peak, placement: placement)
        }
        switch checkpointing {
        case .none: settings.checkpointing = false
        case .layer: settings.checkpointing = true
        case .auto:
            let free = ledger.capBytes - ledger.usedBytes
            // A plan too large to count fits nothing; the one chosen is planned again below, and refused then.
            func fits(_ checkpointed: Bool) -> Bool { (try? plan(checkpointed)).map { Int64($0.total) <= free } ?? false }
            settings.checkpointing = !fits(false) && fits(true)
        }
        return try plan(settings.checkpointing)
    }
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

extension TrainingJob.Settings {
    /// Parameters of the base tensors `frozen` names (for full-parameter planning).
    func frozenParameterCount(_ config: LlamaConfig) -> Int {
        let c = config.hiddenSize, d = config.headDim
        var count = 0
        func frozenName(_ name: String) -> Bool { frozen.contains { name.contains($0) } }
        // Untied for training, a tied embedding is the input's only; the head is not a parameter of it.
        let tied = config.tiedEmbeddings && !untieEmbeddings
        if frozenName("model.embed_tokens.weight") || (tied && frozenName("lm_head.weight")) { count += config.vocabSize * c }
        if !config.tiedEmbeddings && frozenName("lm_head.weight") { count += config.vocabSize * c }
        if frozenName("model.norm.weight") { count += c }
        for (i, s) in config.layers.enumerated() {
            let p = "model.layers.\(i)."
            let sizes = [("self_attn.q_proj", s.heads * d * c), ("self_attn.k_proj", s.kvHeads * d * c), ("self_attn.v_proj", s.kvHeads * d * c),
                         ("self_attn.o_proj", c * s.heads * d), ("mlp.gate_proj", s.intermediate * c), ("mlp.up_proj", s.intermediate * c),
                         ("mlp.down_proj", c * s.intermediate), ("input_layernorm", c), ("post_attention_layernorm", c)]
            for (name, size) in sizes where frozenName(p + name + ".weight") { count += size }
        }
        return count
    }
}

