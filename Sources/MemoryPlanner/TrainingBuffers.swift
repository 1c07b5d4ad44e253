/// The names and sizes of a training step's buffers, written once: `StepProgramBuilder.trainingStep`
/// plans them and Runtime's `TrainingStep` looks each one up by the same name in the placed program.
///
/// Axes: B micro-batch rows, S sequence length, T = B·S, C hidden, H/KV heads, D head dim,
/// I MLP width, V vocab, r LoRA rank.
public struct TrainingBuffers: Sendable {
    /// What a layer's forward writes and its backward reads. The attention block's slots are made
    /// by `.attentionForward` and released by `.attentionBackward`; the MLP block's likewise.
    /// The normed inputs and silu(gate)·up are not kept: they live in the step-long `norm` and `act`
    /// (one layer's worth) and the backward remakes them there from what is kept.
    public enum Slot: Hashable, Sendable {
        /// 1/rms of each row of the layer input (T).
        case attentionNormRMS
        /// Projections after RoPE: q (T, H·D), k and v (T, KV·D).
        case q, k, v
        /// softmax(q·kᵀ/√D) per row and head (B, H, causal blocks of S × S, `probsFloats`), and its
        /// product with v (T, H·D).
        case probs, attention
        /// The layer input plus the attention block's output (T, C).
        case residual
        /// 1/rms of each row of the residual (T).
        case mlpNormRMS
        /// gate and up projections (T, I).
        case gate, up
        /// x·Aᵀ of the LoRA pair on a target (T, r), kept for its backward.
        case loraU(LoRATarget)
        /// Families with per-head norms (Qwen3): q (T, H·D) and k (T, KV·D) as projected, before
        /// the norm, and 1/rms of each head's row (T·H, T·KV), for the norms' backward.
        case qPreNorm, kPreNorm, qNormRMS, kNormRMS
        /// Families with norms on the blocks' outputs (Gemma 3): o's and down's outputs before
        /// them (T, C) and their 1/rms (T).
        case attentionOutput, attentionOutputRMS, mlpOutput, mlpOutputRMS

        public var name: String {
            switch self {
            case .attentionNormRMS: return "attn_norm.rms"
            case .q: return "attn.q"
            case .k: return "attn.k"
            case .v: return "attn.v"
            case .probs: return "attn.probs"
            case .attention: return "attn.out"
            case .residual: return "residual"
            case .mlpNormRMS: return "mlp_norm.rms"
            case .gate: return "mlp.gate"
            case .up: return "mlp.up"
            case .loraU(let target): return "lora.\(target.rawValue).u"
            case .qPreNorm: return "attn.q_pre_norm"
            case .kPreNorm: return "attn.k_pre_norm"
            case .qNormRMS: return "attn.q_norm.rms"
            case .kNormRMS: return "attn.k_norm.rms"
            case .attentionOutput: return "attn.o_out"
            case .attentionOutputRMS: return "attn.post_norm.rms"
            case .mlpOutput: return "mlp.down_out"
            case .mlpOutputRMS: return "mlp.post_norm.rms"
            }
        }

        /// Kept in bf16 under `Workload.ActivationDType.bf16` (without checkpointing): the layer
        /// computes them in fp32 in `wide(_:)`, narrows them into the kept slots when a block is
        /// done (the attention block's five; the residual, which the MLP block reads, with gate and
        /// up), and the backward widens them back first. With every one of them in bf16 the golden
        /// gradients stay within the option's tolerance (`ActivationDTypeTests`), 1/rms in bf16 as
        /// well; 1/rms (T per layer) and x·Aᵀ (T·r) stay fp32 all the same, too small to matter.
        public static let attentionSlots16: [Slot] = [.q, .k, .v, .probs, .attention]
        public static let mlpSlots16: [Slot] = [.residual, .gate, .up]

        public var in16Bits: Bool { Self.attentionSlots16.contains(self) || Self.mlpSlots16.contains(self) }

        /// Made by the MLP block (else by the attention block).
        public var inMLP: Bool {
            switch self {
            case .mlpNormRMS, .gate, .up, .mlpOutput, .mlpOutputRMS: return true
            case .loraU(let target): return [.gate, .up, .down].contains(target)
            default: return false
            }
        }
    }

    /// The gradients a layer's backward works in, made and released by one backward op.
    public enum Gradient: String, CaseIterable, Sendable {
        // MLP backward: d(act), d(gate), d(up), d(mlp_norm).
        case act = "grad.mlp.act", gate = "grad.mlp.gate", up = "grad.mlp.up", mlpNorm = "grad.mlp_norm"
        // Attention backward: d(attention out), d(q), d(k), d(v), one (S, S) block of d(scores), d(attn_norm).
        case attention = "grad.attn.out", q = "grad.attn.q", k = "grad.attn.k", v = "grad.attn.v"
        case scores = "grad.attn.scores", attentionNorm = "grad.attn_norm"

        public var inMLP: Bool { [.act, .gate, .up, .mlpNorm].contains(self) }
    }

    /// Training attention keeps its probabilities in causal row blocks of this many rows: block
    /// [r0, r1) holds its rows' scores against keys 0..<r1 (what those rows can see), the blocks
    /// packed one after another, so most of the masked half of each (S, S) is never stored
    /// (37.5% less at S = 256, nearly half at long S).
    public static let probsBlockRows = 64

    /// Floats of one head's packed probabilities at sequence length `s`.
    /// n full blocks (block i: B rows of (i + 1)·B keys) make B²·n(n + 1)/2; a last partial block
    /// of s mod B rows sees all s keys.
    public static func probsFloats(seqLen s: Int) throws(SizeError) -> CheckedSize {
        let rows = CheckedSize(probsBlockRows), n = s / probsBlockRows, rest = s % probsBlockRows
        let triangle = try CheckedSize(n) * CheckedSize(n + 1)
        return try rows * rows * CheckedSize(triangle.value / 2) + CheckedSize(rest) * CheckedSize(s)
    }

    /// Rows of logits the cross-entropy works on at once: enough that lm_head's product is an
    /// efficient sgemm and a non-fp32 lm_head is widened only ⌈T / 256⌉ times per pass (at 32 rows
    /// widening and packing the 49k-row weight of SmolLM2 took a quarter of a step), few enough that
    /// the block stays small beside the activations (256 × vocab floats: 50 MB at 49k, 131 MB at 128k).
    public static func lossRows(tokens: Int) -> Int { max(1, min(tokens, 256)) }
    /// The linear scratch non-fp32 weights are widened into, block by block.
    public static let scratchFloats = 1 << 20

    // Step-long and loss buffers.
    public static let rope = "workspace.rope", scratch = "workspace.scratch"
    /// The sliding layers' angles where they have a rope of their own (`ModelShape.localRope`).
    public static let ropeLocal = "workspace.rope_local"
    /// One layer's normed input or residual (T, C) and silu(gate)·up (T, max I): the forward writes
    /// them for its products and drops them; the backward remakes them where its LoRA (or weight)
    /// gradients read them, from the kept input or residual and 1/rms, and from gate and up, with
    /// the forward's arithmetic, so they are the same bit for bit.
    public static let norm = "workspace.norm", act = "workspace.act"
    /// x·Aᵀ's gradient (T, r) and dropout(x) (T, max(C, I, H·D)), LoRA only.
    public static let loraGradient = "workspace.lora_du", loraDropout = "workspace.lora_dropout"
    public static let finalInput = "final.input", finalNormRMS = "final.norm.rms", finalNorm = "final.norm"
    public static let logits = "loss.logits", lmHeadU = "loss.lora.lm_head.u", finalNormGradient = "grad.final.norm"
    /// The gradient of the residual stream, (T, C), from the loss down to the embedding.
    public static let hiddenGradient = "grad.hidden"

    public static func input(layer: Int) -> String { "layers.\(layer).input" }

    /// The fp32 copy of a 16-bit slot that every layer computes in and widens into (one layer's worth).
    public static func wide(_ slot: Slot) -> String { "workspace.wide.\(slot.name)" }

    /// `transient`: the set a checkpointed forward makes and drops at once (its backward reads the
    /// recomputed set instead).
    public static func name(layer: Int, _ slot: Slot, transient: Bool = false) -> String {
        "layers.\(layer).\(transient ? "forward." : "")\(slot.name)"
    }

    public static func name(layer: Int, _ gradient: Gradient) -> String { "layers.\(layer).\(gradient.rawValue)" }

    public let b, s, t, c, d, v, r: CheckedSize
    /// The LoRA targets of the decoder layers (lm_head apart), empty without LoRA.
    public let layerTargets: [LoRATarget]
    public let lora: Bool
    public let lmHeadTargeted: Bool
    /// The `in16Bits` slots are kept in bf16 (bf16 activations without checkpointing).
    public let narrowed: Bool
    /// The family normalises each head of q and k (`ModelLayout.hasHeadNorms`).
    public let headNorms: Bool
    /// The family normalises the attention block's and the MLP's outputs.
    public let attentionOutputNorm, mlpOutputNorm: Bool

    public init(_ shape: ModelShape, microBatch: Int, seqLen: Int, lora: Workload.LoRA?,
                activations: Workload.ActivationDType = .f32, checkpointing: Bool = false) throws {
        b = CheckedSize(microBatch)
        s = CheckedSize(seqLen)
        t = try b * s
        c = CheckedSize(shape.hidden)
        d = CheckedSize(shape.headDim)
        v = CheckedSize(shape.vocab)
        r = CheckedSize(lora?.r ?? 0)
        self.lora = lora != nil
        layerTargets = LoRATarget.layerTargets.filter { lora?.targets.contains($0) ?? false }
        lmHeadTargeted = lora?.targets.contains(.lmHead) ?? false
        narrowed = activations == .bf16 && !checkpointing
        headNorms = shape.layout.hasHeadNorms
        attentionOutputNorm = shape.layout.normSites.contains(.attentionOutput)
        mlpOutputNorm = shape.layout.normSites.contains(.mlpOutput)
    }

    /// The slots kept in bf16 (none unless `narrowed`).
    public var slotsIn16Bits: [Slot] { narrowed ? slots.filter(\.in16Bits) : [] }

    /// Bytes of a layer's kept slot: 2 per element when it is kept in bf16, else 4.
    public func bytes(_ slot: Slot, _ layer: ModelShape.Layer) throws -> CheckedSize {
        try floats(slot, layer) * (narrowed && slot.in16Bits ? 2 : 4)
    }

    /// The slots a layer's forward fills, in the order it fills them.
    public var slots: [Slot] {
        [.attentionNormRMS] + (headNorms ? [.qPreNorm, .kPreNorm, .qNormRMS, .kNormRMS] : [])
            + [.q, .k, .v, .probs, .attention] + (attentionOutputNorm ? [.attentionOutput, .attentionOutputRMS] : [])
            + [.residual, .mlpNormRMS, .gate, .up] + (mlpOutputNorm ? [.mlpOutput, .mlpOutputRMS] : []) + layerTargets.map(Slot.loraU)
    }

    public func floats(_ slot: Slot, _ layer: ModelShape.Layer) throws -> CheckedSize {
        let h = CheckedSize(layer.heads), kv = CheckedSize(layer.kvHeads), i = CheckedSize(layer.intermediate)
        switch slot {
        case .attentionNormRMS, .mlpNormRMS: return t
        case .residual: return try t * c
        case .q, .attention: return try t * h * d
        case .k, .v: return try t * kv * d
        case .probs: return try b * h * Self.probsFloats(seqLen: s.value)
        case .gate, .up: return try t * i
        case .loraU: return try t * r
        case .qPreNorm: return try t * h * d
        case .kPreNorm: return try t * kv * d
        case .qNormRMS: return try t * h
        case .kNormRMS: return try t * kv
        case .attentionOutput, .mlpOutput: return try t * c
        case .attentionOutputRMS, .mlpOutputRMS: return t
        }
    }

    public func floats(_ gradient: Gradient, _ layer: ModelShape.Layer) throws -> CheckedSize {
        let h = CheckedSize(layer.heads), kv = CheckedSize(layer.kvHeads), i = CheckedSize(layer.intermediate)
        switch gradient {
        case .act, .gate, .up: return try t * i
        case .mlpNorm, .attentionNorm: return try t * c
        case .attention, .q: return try t * h * d
        case .k, .v: return try t * kv * d
        case .scores: return try s * s
        }
    }

    /// The widest MLP of `shape`, what `act` holds a layer of.
    public func widestMLP(_ shape: ModelShape) -> CheckedSize {
        shape.layers.reduce(CheckedSize(0)) { max($0, CheckedSize($1.intermediate)) }
    }

    /// The widest input a LoRA linear of `shape` has: dropout(x) holds one.
    public func widestInput(_ shape: ModelShape) throws -> CheckedSize {
        try shape.layers.reduce(c) { max($0, CheckedSize($1.intermediate), try CheckedSize($1.heads) * d) }
    }
}
