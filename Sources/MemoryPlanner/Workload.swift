/// What a plan is for: a training step or a generation, with the settings memory depends on.
public struct Workload: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case train, generate }
    /// How the frozen base weights are held: bytes per parameter of the decoder linears.
    public enum BaseDType: String, Codable, Sendable {
        case f32, bf16, f16, nf4

        /// NF4 with double quantisation (bitsandbytes, block 64): 4 bits per weight, one 8-bit
        /// absmax per 64 weights, one fp32 scale per 256 blocks: 4.127 bits.
        public func linearBytes(_ parameters: Int) throws -> Int {
            try CheckedSize.named("the decoder linears' bytes") {
                let n = CheckedSize(parameters)
                switch self {
                case .f32: return try n * 4
                case .bf16, .f16: return try n * 2
                case .nf4:
                    let blocks = (try n + 63).value / 64
                    return try CheckedSize((try n + 1).value / 2) + blocks + ((blocks + 255) / 256) * 4
                }
            }
        }

        /// Embeddings, lm_head and norms stay in 16 bits under NF4 (as QLoRA does), else as the base.
        public var otherBytesPerParameter: Int { self == .f32 ? 4 : 2 }
    }

    /// How a training step keeps a layer's activations for its backward: fp32, or the larger
    /// slots in bf16 (`TrainingBuffers.Slot.in16Bits`), computed in fp32 and narrowed when the
    /// layer is done, widened again before its backward.
    public enum ActivationDType: String, Codable, CaseIterable, Sendable { case f32, bf16 }

    public struct LoRA: Codable, Equatable, Sendable {
        public var r: Int
        public var targets: Set<LoRATarget>
        public init(r: Int, targets: Set<LoRATarget>) {
            self.r = r
            self.targets = targets
        }
    }

    public var kind: Kind
    public var microBatch: Int
    public var seqLen: Int
    public var gradAccum: Int
    /// nil: full-parameter training (or plain generation).
    public var lora: LoRA?
    public var baseDType: BaseDType
    public var checkpointing: Bool
    public var activationDType: ActivationDType
    /// Tokens generated after a prompt of `seqLen` (generate only).
    public var newTokens: Int
    /// Rows of logits a generate-kind request holds at once: 1 for a generation, every token for
    /// `model/forward` with all logits, one prefill chunk for perplexity.
    public var logitsRows: Int

    public init(kind: Kind, microBatch: Int = 1, seqLen: Int, gradAccum: Int = 1, lora: LoRA? = nil,
                baseDType: BaseDType = .f32, checkpointing: Bool = false, activationDType: ActivationDType = .f32,
                newTokens: Int = 0, logitsRows: Int = 1) {
        self.kind = kind
        self.microBatch = microBatch
        self.seqLen = seqLen
        self.gradAccum = gradAccum
        self.lora = lora
        self.baseDType = baseDType
        self.checkpointing = checkpointing
        self.activationDType = activationDType
        self.newTokens = newTokens
        self.logitsRows = max(1, logitsRows)
    }

    /// Throws `SizeError.overLimit` naming the first setting (as `memory/plan` spells it) outside
    /// its `SizeLimits` bound. Every workload is checked before it is planned.
    public func checkSizes() throws {
        try SizeLimits.check(seqLen, atMost: SizeLimits.seqLen, "seqLen")
        try SizeLimits.check(microBatch, atMost: SizeLimits.microBatch, "microBatch")
        try SizeLimits.check(gradAccum, atMost: SizeLimits.gradAccum, "gradAccum")
        // A prompt and its new tokens share one sequence's positions.
        try SizeLimits.check(newTokens, atMost: SizeLimits.seqLen - seqLen, "newTokens", allowZero: true)
        try SizeLimits.check(logitsRows, atMost: SizeLimits.seqLen, "logitsRows")
        if let lora { try SizeLimits.check(lora.r, atMost: SizeLimits.loraRank, "lora.r") }
    }
}
