/// Builds the step description of a workload on a model shape: the buffers a training step or a
/// generation holds, in the order they come and go, with sizes that mirror the runtime's own
/// allocations (Runtime's TrainingStep.Layout and InferenceSession). A dry run needs nothing else.
///
/// Axes: B micro-batch rows, S sequence length, T = B·S, C hidden, H/KV heads, D head dim,
/// I MLP width, V vocab, r LoRA rank, P cached positions.
public enum StepProgramBuilder {
    /// Rows of logits the cross-entropy works on at once, and the linear scratch, as the runtime uses them.
    public static let lossRows = 32
    public static let trainingScratchFloats = 1 << 20
    public static let inferenceScratchFloats = 1 << 22

    /// The scratch a session widens (or dequantizes) weights into, block by block: none when every
    /// weight is fp32 and used in place.
    public static func inferenceScratchFloats(base: Workload.BaseDType) -> Int {
        base == .f32 ? 0 : inferenceScratchFloats
    }
    public static let inferenceChunk = 256
    public static let attentionBlockRows = 128

    /// The weights held for `base`: decoder linears in its dtype, the rest in 16 bits (fp32 for f32).
    static func addWeights(_ program: inout StepProgram, _ shape: ModelShape, base: Workload.BaseDType) throws {
        let c = CheckedSize(shape.hidden), other = base.otherBytesPerParameter
        try program.buffer("weights.embed_tokens", kind: .weight, persistent: true) { try shape.vocab * c * other }
        for (l, layer) in shape.layers.enumerated() {
            try program.buffer("layers.\(l).weights", kind: .weight, persistent: true) {
                try CheckedSize(try base.linearBytes(try shape.linearParameters(layer))) + 2 * c * other
            }
        }
        try program.buffer("weights.norm", kind: .weight, persistent: true) { try c * other }
        if !shape.tiedEmbeddings { try program.buffer("weights.lm_head", kind: .weight, persistent: true) { try shape.vocab * c * other } }
    }

    /// One optimizer step: `gradAccum` micro-batches share these buffers one after another, so the
    /// plan of one micro-batch's forward and backward plus the optimizer is the step's peak.
    /// `optimizer: false` plans the backward alone (Taylor importance: gradients, no update);
    /// `trainableParameters` overrides how many parameters have gradients in full-parameter mode
    /// (default: all of them). Throws `SizeError` for a shape or workload past `SizeLimits`, or
    /// sizes whose products overflow.
    public static func trainingStep(_ shape: ModelShape, _ workload: Workload, optimizer: Bool = true,
                                    trainableParameters: Int? = nil) throws -> StepProgram {
        try shape.checkSizes()
        try workload.checkSizes()
        var program = StepProgram()
        let f = 4  // fp32 bytes
        let b = CheckedSize(workload.microBatch), s = CheckedSize(workload.seqLen), t = try b * s
        let c = CheckedSize(shape.hidden), d = CheckedSize(shape.headDim), v = CheckedSize(shape.vocab)
        let hMax = CheckedSize(shape.layers.map(\.heads).max() ?? 1), kvMax = CheckedSize(shape.layers.map(\.kvHeads).max() ?? 1)
        let iMax = CheckedSize(shape.layers.map(\.intermediate).max() ?? 1)
        let r = CheckedSize(workload.lora?.r ?? 1)
        let loraTargets = workload.lora.map { $0.targets.subtracting([.lmHead]).count } ?? 0

        // Persistent: weights (an fp32 copy for full-parameter training), trainable state.
        let trainable: CheckedSize
        if let lora = workload.lora {
            try addWeights(&program, shape, base: workload.baseDType)
            trainable = CheckedSize(try shape.loraParameterCount(rank: lora.r, targets: lora.targets))
            try program.buffer("adapter", kind: .adapter, persistent: true) { try trainable * f }
        } else {
            try addWeights(&program, shape, base: .f32)
            trainable = CheckedSize(try trainableParameters ?? shape.parameterCount)
        }
        let gradients = try program.buffer("gradients", kind: .gradient, persistent: true) { try trainable * f }
        let moments = optimizer ? try program.buffer("optimizer.adamw", kind: .optimizer, persistent: true) { try 2 * trainable * f } : nil

        // Step-long workspaces: RoPE angles and the linear scratch.
        let rope = try program.buffer("workspace.rope", kind: .workspace) { try t * d * f }
        let scratch = try program.buffer("workspace.scratch", kind: .workspace) { try trainingScratchFloats * CheckedSize(f) }

        /// What a layer keeps for its backward besides its input (TrainingStep.LayerActivations).
        func saved(_ layer: ModelShape.Layer) throws -> CheckedSize {
            try (loraTargets * t * r + 3 * t * c + 2 * t + 2 * t * layer.heads * d + 2 * t * layer.kvHeads * d
                + b * layer.heads * s * s + 3 * t * layer.intermediate) * f
        }
        var input = try program.buffer("layers.0.input", kind: .activation) { try t * c * f }
        program.op("embed", creates: [rope, scratch, input], reads: [], releases: [])
        var inputs: [Int] = []
        var keeps: [Int?] = []
        for (l, layer) in shape.layers.enumerated() {
            let next = try program.buffer(l + 1 < shape.layers.count ? "layers.\(l + 1).input" : "final.input", kind: .activation) { try t * c * f }
            let kept = try program.buffer("layers.\(l).saved", kind: .activation) { try saved(layer) }
            program.op("layers.\(l).forward", creates: [kept, next], reads: [input, rope, scratch],
                       releases: workload.checkpointing ? [kept] : [])
            inputs.append(input)
            keeps.append(workload.checkpointing ? nil : kept)
            input = next
        }
        // Loss: final norm, lm_head and cross-entropy in blocks of rows; the backward workspaces start here.
        let lossWorkspace = try program.buffer("loss.workspace", kind: .workspace) { try (t + t * c + lossRows * v + t * r) * f }
        let backward = try program.buffer("backward.workspace", kind: .workspace) {
            try (t * c + t * max(c, iMax) + 2 * t * hMax * d + 2 * t * kvMax * d + 3 * t * iMax + s * s
                 + max(t, CheckedSize(lossRows)) * r + t * max(c, iMax, try hMax * d)) * f
        }
        program.op("loss", creates: [lossWorkspace, backward], reads: [input, gradients], releases: [input, lossWorkspace])
        for l in stride(from: shape.layers.count - 1, through: 0, by: -1) {
            var kept = keeps[l]
            if kept == nil {
                let recomputed = try program.buffer("layers.\(l).recomputed", kind: .activation) { try saved(shape.layers[l]) }
                program.op("layers.\(l).recompute", creates: [recomputed], reads: [inputs[l], rope, scratch], releases: [])
                kept = recomputed
            }
            program.op("layers.\(l).backward", creates: [], reads: [kept!, inputs[l], backward, gradients, scratch],
                       releases: l == 0 ? [kept!, inputs[l], backward, rope, scratch] : [kept!, inputs[l]])
        }
        if let moments { program.op("optimizer", creates: [], reads: [gradients, moments], releases: []) }
        return program
    }

    /// A generation: prefill of the prompt in chunks, then decode steps, in one session whose KV
    /// cache holds prompt + new tokens and whose workspace is sized for a prefill chunk. Throws
    /// `SizeError` as `trainingStep` does.
    public static func generation(_ shape: ModelShape, _ workload: Workload) throws -> StepProgram {
        try shape.checkSizes()
        try workload.checkSizes()
        var program = StepProgram()
        let f = 4
        let positions = try workload.microBatch * (try CheckedSize(workload.seqLen) + workload.newTokens)
        let t = CheckedSize(inferenceChunk), c = CheckedSize(shape.hidden), d = CheckedSize(shape.headDim)
        let hMax = CheckedSize(shape.layers.map(\.heads).max() ?? 1), kvMax = CheckedSize(shape.layers.map(\.kvHeads).max() ?? 1)
        let iMax = CheckedSize(shape.layers.map(\.intermediate).max() ?? 1)
        try addWeights(&program, shape, base: workload.baseDType)
        if let lora = workload.lora {
            try program.buffer("adapter", kind: .adapter, persistent: true) {
                try CheckedSize(try shape.loraParameterCount(rank: lora.r, targets: lora.targets)) * f
            }
        }
        let kv = try program.buffer("kv_cache", kind: .kvCache, persistent: true) {
            try CheckedSize.sum(shape.layers.map { try 2 * CheckedSize($0.kvHeads) }) * positions * d * f
        }
        let workspace = try program.buffer("session.workspace", kind: .workspace) {
            let scores = max(try hMax * positions, min(try hMax * min(t, CheckedSize(attentionBlockRows)) * positions, CheckedSize(16 << 20)))
            return try (2 * t * c + 2 * t * hMax * d + 2 * t * kvMax * d + 2 * t * iMax + scores + t * d
                        + inferenceScratchFloats(base: workload.baseDType) + t * (workload.lora?.r ?? 0)) * f
        }
        let logits = try program.buffer("logits", kind: .activation) { try workload.logitsRows * CheckedSize(shape.vocab) * f }
        program.op("prefill", creates: [workspace, logits], reads: [kv], releases: [])
        program.op("decode", creates: [], reads: [kv, workspace, logits], releases: [workspace, logits])
        return program
    }
}

extension StepProgram {
    /// Adds a buffer whose size `size` computes with checked arithmetic; an overflow, or a size
    /// past `SizeLimits.planBytes`, is a `SizeError` naming the buffer.
    @discardableResult
    mutating func buffer(_ name: String, kind: BufferKind, persistent: Bool = false, size: () throws -> CheckedSize) throws -> Int {
        buffer(name, kind: kind, bytes: try CheckedSize.named(name, size), persistent: persistent)
    }
}
