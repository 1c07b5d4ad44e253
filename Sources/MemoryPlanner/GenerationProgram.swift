/// The names and sizes of a generation session's buffers, written once: `StepProgramBuilder.generation`
/// plans them and Runtime's `InferenceSession` takes each by the same name from the placed program.
/// Every buffer is sized for the widest layer and one prefill chunk of T tokens.
public enum GenerationBuffers: String, CaseIterable, Sendable {
    /// The residual stream and the normed input of a block (T, C).
    case hidden = "session.hidden", norm = "session.norm"
    /// q and attention output (T, H·D); k, v (T, KV·D) before they go into the cache.
    case q = "session.q", k = "session.k", v = "session.v", attention = "session.attention"
    /// gate (then silu(gate)·up) and up (T, I).
    case gate = "session.gate", up = "session.up"
    /// Every head's attention scores for a block of query rows against every cached key.
    case scores = "session.scores"
    case rope = "session.rope"
    /// The sliding layers' angles where they have a rope of their own (Gemma 3).
    case ropeLocal = "session.rope_local"
    /// A block's output before its output norm (T, C), for families with one (Gemma 3).
    case blockOutput = "session.block_output"
    /// Non-fp32 weights widened block by block; none for an fp32 model.
    case weightScratch = "session.weight_scratch"
    /// x·Aᵀ of the LoRA pair being applied (T, r); with an adapter only.
    case loraU = "session.lora_u"
    /// `logitsRows` rows of logits (rows, V).
    case logits = "logits"

    /// Floats of the buffer (0: not in the program). `positions`: the KV cache's capacity.
    static func floats(_ buffer: GenerationBuffers, _ shape: ModelShape, _ workload: Workload, chunk: Int,
                       positions: CheckedSize) throws -> CheckedSize {
        let t = CheckedSize(chunk), c = CheckedSize(shape.hidden), d = CheckedSize(shape.headDim)
        let h = CheckedSize(shape.layers.map(\.heads).max() ?? 1), kv = CheckedSize(shape.layers.map(\.kvHeads).max() ?? 1)
        let i = CheckedSize(shape.layers.map(\.intermediate).max() ?? 1)
        switch buffer {
        case .hidden, .norm: return try t * c
        case .q, .attention: return try t * h * d
        case .k, .v: return try t * kv * d
        case .gate, .up: return try t * i
        // At least one row per head; long contexts use fewer rows per block to stay under 64 MB.
        case .scores:
            return max(try h * positions, min(try h * min(t, CheckedSize(StepProgramBuilder.attentionBlockRows)) * positions, CheckedSize(16 << 20)))
        case .rope: return try t * d
        case .ropeLocal: return shape.localRope ? try t * d : CheckedSize(0)
        case .blockOutput:
            let sites = shape.layout.normSites
            return sites.contains(.attentionOutput) || sites.contains(.mlpOutput) ? try t * c : CheckedSize(0)
        case .weightScratch: return CheckedSize(StepProgramBuilder.inferenceScratchFloats(base: workload.baseDType))
        case .loraU: return try t * (workload.lora?.r ?? 0)
        case .logits: return try workload.logitsRows * CheckedSize(shape.vocab)
        }
    }
}

extension StepProgramBuilder {
    /// A generation: prefill of the prompt in chunks of `chunk` tokens, then decode steps, in one
    /// session whose KV cache holds prompt + new tokens (for each of `microBatch` sequences).
    /// Throws `SizeError` as `trainingStep` does.
    public static func generation(_ shape: ModelShape, _ workload: Workload, chunk: Int = inferenceChunk) throws -> StepProgram {
        try shape.checkSizes()
        try workload.checkSizes()
        var program = StepProgram()
        let f = 4
        let sequence = try CheckedSize(workload.seqLen) + workload.newTokens
        let positions = try workload.microBatch * sequence
        try addWeights(&program, shape, base: workload.baseDType)
        if let lora = workload.lora {
            try program.buffer("adapter", kind: .adapter, persistent: true) {
                try CheckedSize(try shape.loraParameterCount(rank: lora.r, targets: lora.targets)) * f
            }
        }
        // A sliding layer's cache holds its window and a chunk (ModelShape.kvSlots), the others every position.
        let slots = shape.kvSlots(positions: sequence.value, chunk: chunk)
        let kv = try program.buffer("kv_cache", kind: .kvCache, persistent: true) {
            try CheckedSize.sum(zip(shape.layers, slots).map { try 2 * CheckedSize($0.kvHeads) * $1 }) * workload.microBatch * shape.headDim * f
        }
        var session: [Int] = []
        for buffer in GenerationBuffers.allCases {
            let floats = try GenerationBuffers.floats(buffer, shape, workload, chunk: chunk, positions: positions)
            guard floats.value > 0 else { continue }
            session.append(try program.buffer(buffer.rawValue, kind: buffer == .logits ? .activation : .workspace) { try floats * f })
        }
        program.op("prefill", creates: session, reads: [kv], task: .prefill)
        program.op("decode", reads: [kv] + session, releases: session, task: .decode)
        return program
    }
}
