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
    static func addWeights(_ program: inout StepProgram, _ shape: ModelShape, base: Workload.BaseDType) {
        let c = shape.hidden, other = base.otherBytesPerParameter
        _ = program.buffer("weights.embed_tokens", kind: .weight, bytes: shape.vocab * c * other, persistent: true)
        for (l, layer) in shape.layers.enumerated() {
            _ = program.buffer("layers.\(l).weights", kind: .weight,
                               bytes: base.linearBytes(shape.linearParameters(layer)) + 2 * c * other, persistent: true)
        }
        _ = program.buffer("weights.norm", kind: .weight, bytes: c * other, persistent: true)
        if !shape.tiedEmbeddings { _ = program.buffer("weights.lm_head", kind: .weight, bytes: shape.vocab * c * other, persistent: true) }
    }

    /// One optimizer step: `gradAccum` micro-batches share these buffers one after another, so the
    /// plan of one micro-batch's forward and backward plus the optimizer is the step's peak.
    /// `optimizer: false` plans the backward alone (Taylor importance: gradients, no update);
    /// `trainableParameters` overrides how many parameters have gradients in full-parameter mode
    /// (default: all of them).
    public static func trainingStep(_ shape: ModelShape, _ workload: Workload, optimizer: Bool = true,
                                    trainableParameters: Int? = nil) -> StepProgram {
        var program = StepProgram()
        let f = 4  // fp32 bytes
        let b = workload.microBatch, s = workload.seqLen, t = b * s
        let c = shape.hidden, d = shape.headDim, v = shape.vocab
        let hMax = shape.layers.map(\.heads).max() ?? 1, kvMax = shape.layers.map(\.kvHeads).max() ?? 1
        let iMax = shape.layers.map(\.intermediate).max() ?? 1
        let r = workload.lora?.r ?? 1
        let loraTargets = workload.lora.map { $0.targets.subtracting([.lmHead]).count } ?? 0

        // Persistent: weights (an fp32 copy for full-parameter training), trainable state.
        let trainable: Int
        if let lora = workload.lora {
            addWeights(&program, shape, base: workload.baseDType)
            trainable = shape.loraParameterCount(rank: lora.r, targets: lora.targets)
            _ = program.buffer("adapter", kind: .adapter, bytes: trainable * f, persistent: true)
        } else {
            addWeights(&program, shape, base: .f32)
            trainable = trainableParameters ?? shape.parameterCount
        }
        let gradients = program.buffer("gradients", kind: .gradient, bytes: trainable * f, persistent: true)
        let moments = optimizer ? program.buffer("optimizer.adamw", kind: .optimizer, bytes: 2 * trainable * f, persistent: true) : nil

        // Step-long workspaces: RoPE angles and the linear scratch.
        let rope = program.buffer("workspace.rope", kind: .workspace, bytes: t * d * f, persistent: false)
        let scratch = program.buffer("workspace.scratch", kind: .workspace, bytes: trainingScratchFloats * f, persistent: false)

        /// What a layer keeps for its backward besides its input (TrainingStep.LayerActivations).
        func saved(_ layer: ModelShape.Layer) -> Int {
            (loraTargets * t * r + 3 * t * c + 2 * t + 2 * t * layer.heads * d + 2 * t * layer.kvHeads * d
                + b * layer.heads * s * s + 3 * t * layer.intermediate) * f
        }
        var input = program.buffer("layers.0.input", kind: .activation, bytes: t * c * f, persistent: false)
        program.op("embed", creates: [rope, scratch, input], reads: [], releases: [])
        var inputs: [Int] = []
        var keeps: [Int?] = []
        for (l, layer) in shape.layers.enumerated() {
            let next = program.buffer(l + 1 < shape.layers.count ? "layers.\(l + 1).input" : "final.input", kind: .activation,
                                      bytes: t * c * f, persistent: false)
            let kept = program.buffer("layers.\(l).saved", kind: .activation, bytes: saved(layer), persistent: false)
            program.op("layers.\(l).forward", creates: [kept, next], reads: [input, rope, scratch],
                       releases: workload.checkpointing ? [kept] : [])
            inputs.append(input)
            keeps.append(workload.checkpointing ? nil : kept)
            input = next
        }
        // Loss: final norm, lm_head and cross-entropy in blocks of rows; the backward workspaces start here.
        let lossWorkspace = program.buffer("loss.workspace", kind: .workspace, bytes: (t + t * c + lossRows * v + t * r) * f, persistent: false)
        let backward = program.buffer("backward.workspace", kind: .workspace,
                                      bytes: (t * c + t * max(c, iMax) + 2 * t * hMax * d + 2 * t * kvMax * d + 3 * t * iMax + s * s
                                              + max(t, lossRows) * r + t * max(c, iMax, hMax * d)) * f, persistent: false)
        program.op("loss", creates: [lossWorkspace, backward], reads: [input, gradients], releases: [input, lossWorkspace])
        for l in stride(from: shape.layers.count - 1, through: 0, by: -1) {
            var kept = keeps[l]
            if kept == nil {
                let recomputed = program.buffer("layers.\(l).recomputed", kind: .activation, bytes: saved(shape.layers[l]), persistent: false)
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
    /// cache holds prompt + new tokens and whose workspace is sized for a prefill chunk.
    public static func generation(_ shape: ModelShape, _ workload: Workload) -> StepProgram {
        var program = StepProgram()
        let f = 4
        let positions = workload.microBatch * (workload.seqLen + workload.newTokens)
        let t = inferenceChunk, c = shape.hidden, d = shape.headDim
        let hMax = shape.layers.map(\.heads).max() ?? 1, kvMax = shape.layers.map(\.kvHeads).max() ?? 1
        let iMax = shape.layers.map(\.intermediate).max() ?? 1
        addWeights(&program, shape, base: workload.baseDType)
        if let lora = workload.lora {
            _ = program.buffer("adapter", kind: .adapter, bytes: shape.loraParameterCount(rank: lora.r, targets: lora.targets) * f, persistent: true)
        }
        let kv = program.buffer("kv_cache", kind: .kvCache,
                                bytes: shape.layers.reduce(0) { $0 + 2 * $1.kvHeads } * positions * d * f, persistent: true)
        let scores = max(hMax * positions, min(hMax * min(t, attentionBlockRows) * positions, 16 << 20))
        let workspace = program.buffer("session.workspace", kind: .workspace,
                                       bytes: (2 * t * c + 2 * t * hMax * d + 2 * t * kvMax * d + 2 * t * iMax + scores + t * d
                                               + inferenceScratchFloats(base: workload.baseDType) + t * (workload.lora?.r ?? 0)) * f, persistent: false)
        let logits = program.buffer("logits", kind: .activation, bytes: workload.logitsRows * shape.vocab * f, persistent: false)
        program.op("prefill", creates: [workspace, logits], reads: [kv], releases: [])
        program.op("decode", creates: [], reads: [kv, workspace, logits], releases: [workspace, logits])
        return program
    }
}
