/// The names and sizes of a training step's buffers, written once: `StepProgramBuilder.trainingStep`
/// plans them and Runtime's `TrainingStep` looks each one up by the same name in the placed program.
///
/// Axes: B micro-batch rows, S sequence length, T = B·S, C hidden, H/KV heads, D head dim,
/// I MLP width, V vocab, r LoRA rank.
public struct TrainingBuffers: Sendable {
    /// What a layer's forward writes and its backward reads. The attention block's slots are made
    /// by `.attentionForward` and released by `.attentionBackward`; the MLP block's likewise.
    public enum Slot: Hashable, Sendable {
        /// 1/rms of each row of the layer input, and the normed input (T, C).
        case attentionNormRMS, attentionNorm
        /// Projections after RoPE: q (T, H·D), k and v (T, KV·D).
        case q, k, v
        /// softmax(q·kᵀ/√D) per row and head (B, H, S, S), and its product with v (T, H·D).
        case probs, attention
        /// The layer input plus the attention block's output (T, C).
        case residual
        case mlpNormRMS, mlpNorm
        /// gate and up projections, silu(gate)·up (T, I).
        case gate, up, act
        /// x·Aᵀ of the LoRA pair on a target (T, r), kept for its backward.
        case loraU(LoRATarget)

        public var name: String {
            switch self {
            case .attentionNormRMS: return "attn_norm.rms"
            case .attentionNorm: return "attn_norm"
            case .q: return "attn.q"
            case .k: return "attn.k"
            case .v: return "attn.v"
            case .probs: return "attn.probs"
            case .attention: return "attn.out"
            case .residual: return "residual"
            case .mlpNormRMS: return "mlp_norm.rms"
            case .mlpNorm: return "mlp_norm"
            case .gate: return "mlp.gate"
            case .up: return "mlp.up"
            case .act: return "mlp.act"
            case .loraU(let target): return "lora.\(target.rawValue).u"
            }
        }

        /// Made by the MLP block (else by the attention block).
        public var inMLP: Bool {
            switch self {
            case .mlpNormRMS, .mlpNorm, .gate, .up, .act: return true
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

    /// Rows of logits the cross-entropy works on at once: enough that lm_head's product is an
    /// efficient sgemm and a non-fp32 lm_head is widened only ⌈T / 256⌉ times per pass (at 32 rows
    /// widening and packing the 49k-row weight of SmolLM2 took a quarter of a step), few enough that
    /// the block stays small beside the activations (256 × vocab floats: 50 MB at 49k, 131 MB at 128k).
    public static func lossRows(tokens: Int) -> Int { max(1, min(tokens, 256)) }
    /// The linear scratch non-fp32 weights are widened into, block by block.
    public static let scratchFloats = 1 << 20

    // Step-long and loss buffers.
    public static let rope = "workspace.rope", scratch = "workspace.scratch"
    /// x·Aᵀ's gradient (T, r) and dropout(x) (T, max(C, I, H·D)), LoRA only.
    public static let loraGradient = "workspace.lora_du", loraDropout = "workspace.lora_dropout"
    public static let finalInput = "final.input", finalNormRMS = "final.norm.rms", finalNorm = "final.norm"
    public static let logits = "loss.logits", lmHeadU = "loss.lora.lm_head.u", finalNormGradient = "grad.final.norm"
    /// The gradient of the residual stream, (T, C), from the loss down to the embedding.
    public static let hiddenGradient = "grad.hidden"

    public static func input(layer: Int) -> String { "layers.\(layer).input" }

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

    public init(_ shape: ModelShape, microBatch: Int, seqLen: Int, lora: Workload.LoRA?) throws {
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
    }

    /// The slots a layer's forward fills, in the order it fills them.
    public var slots: [Slot] {
        [.attentionNormRMS, .attentionNorm, .q, .k, .v, .probs, .attention, .residual, .mlpNormRMS, .mlpNorm, .gate, .up, .act]
            + layerTargets.map(Slot.loraU)
    }

    public func floats(_ slot: Slot, _ layer: ModelShape.Layer) throws -> CheckedSize {
        let h = CheckedSize(layer.heads), kv = CheckedSize(layer.kvHeads), i = CheckedSize(layer.intermediate)
        switch slot {
        case .attentionNormRMS, .mlpNormRMS: return t
        case .attentionNorm, .residual, .mlpNorm: return try t * c
        case .q, .attention: return try t * h * d
        case .k, .v: return try t * kv * d
        case .probs: return try b * h * s * s
        case .gate, .up, .act: return try t * i
        case .loraU: return try t * r
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

    /// The widest input a LoRA linear of `shape` has: dropout(x) holds one.
    public func widestInput(_ shape: ModelShape) throws -> CheckedSize {
        try shape.layers.reduce(c) { max($0, CheckedSize($1.intermediate), try CheckedSize($1.heads) * d) }
    }
}
