/// The largest sizes loramd plans, loads or allocates for, in one place. Every width read from a
/// config.json, a GGUF header or a pruning manifest, and every workload size a request gives, is
/// checked against these before anything is computed from it or reserved for it; products of
/// sizes within them are then computed with `CheckedSize`, which refuses what would overflow.
///
/// Generous on purpose: each admits every real model and context by a wide margin, so a refusal
/// means a typo or a hostile file, never a model someone runs. For scale, LLaMA-3.1-405B has hidden
/// 16,384, 126 layers, 128 heads (8 kv) of 128 dims, intermediate 53,248, vocab 128,256 and 4.1e11
/// parameters; Gemma's vocab is 256,000; the longest contexts are about 10M tokens.
/// docs/rpc.md ("Size limits") states the same numbers.
public enum SizeLimits {
    /// Decoder layers (405B: 126).
    public static let layers = 1 << 12
    /// hidden_size (405B: 16,384).
    public static let hidden = 1 << 20
    /// intermediate_size, per layer (405B: 53,248).
    public static let intermediate = 1 << 22
    /// Attention heads and key/value heads, per layer (405B: 128).
    public static let heads = 1 << 14
    /// head_dim (LLaMA: 128; Gemma: 256).
    public static let headDim = 1 << 14
    /// vocab_size (Gemma: 256,000).
    public static let vocab = 1 << 24
    /// Every parameter of one model, about 2.8e14 (405B: 4.1e11), so any per-parameter byte count
    /// (16 bytes for fp32 weights, gradients and AdamW's two moments) stays far from overflow.
    public static let parameters = 1 << 48
    /// max_position_embeddings / context_length: a config's statement, kept within 32 bits.
    public static let positions = 1 << 30
    /// Tokens per sequence: `seqLen`, a calibration row, a prompt plus its new tokens (~6.7× 10M).
    public static let seqLen = 1 << 26
    /// Rows per micro-batch.
    public static let microBatch = 1 << 16
    /// Micro-batches per optimizer step.
    public static let gradAccum = 1 << 20
    /// LoRA rank.
    public static let loraRank = 1 << 16
    /// Rows a measurement reads (`maxSamples`).
    public static let samples = 1 << 30
    /// Optimizer steps of one job, and step counts (`steps`, `warmupSteps`, `evalEvery`, `saveEvery`):
    /// 16.7M, against about 1M for a large model's whole pre-training.
    public static let steps = 1 << 24
    /// Tokens one generate request makes (`maxTokens`).
    public static let newTokens = 1_000_000
    /// Bytes of one plan's buffers together (4 EiB): far past any machine, and low enough that the
    /// placement's offsets and sums cannot overflow.
    public static let planBytes = 1 << 62

    /// A config's uniform widths, each against its limit, named as config.json names them: what
    /// config.json readers (the planner's and the runtime's) check before a list of layers is made.
    public static func checkWidths(hidden: Int, intermediate: Int, layers: Int, heads: Int, kvHeads: Int, headDim: Int, vocab: Int) throws {
        try check(layers, atMost: Self.layers, "num_hidden_layers")
        try check(hidden, atMost: Self.hidden, "hidden_size")
        try check(intermediate, atMost: Self.intermediate, "intermediate_size")
        try check(heads, atMost: Self.heads, "num_attention_heads")
        try check(kvHeads, atMost: Self.heads, "num_key_value_heads")
        try check(headDim, atMost: Self.headDim, "head_dim")
        try check(vocab, atMost: Self.vocab, "vocab_size")
    }

    /// Throws `SizeError.overLimit` naming `field` unless 1 <= `value` <= `limit` (0 <= `value`
    /// with `allowZero`, for a size that may be empty).
    public static func check(_ value: Int, atMost limit: Int, _ field: String, allowZero: Bool = false) throws {
        guard value >= (allowZero ? 0 : 1), value <= limit else { throw SizeError.overLimit(field: field, value: value, limit: limit) }
    }
}

/// Why a size cannot be planned or reserved: a value past its stated limit (`SizeLimits`), or
/// sizes each within their limits whose product or sum passes what can be counted. Names the field
/// or the buffer, so the daemon can answer InvalidParams or FormatError naming it.
public enum SizeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `field` is `value`, outside 1...`limit` (or 0...`limit` where zero is allowed).
    case overLimit(field: String, value: Int, limit: Int)
    /// Computing `what` overflowed, or passed `SizeLimits.planBytes`; "" until a caller names it.
    case overflow(what: String)

    public var description: String {
        switch self {
        case .overLimit(let field, _, _): return "\(field) \(detail)"
        case .overflow(let what): return "\(what.isEmpty ? "a size" : what) is too large to count: \(Self.advice)"
        }
    }

    /// The description without the field's name in front (for errors that name it apart).
    public var detail: String {
        switch self {
        case .overLimit(_, let value, let limit):
            return value < 1 ? "must be positive, got \(value)" : "is \(value), past loramd's limit of \(limit)"
        case .overflow(let what): return "makes \(what.isEmpty ? "a size" : what) too large to count: \(Self.advice)"
        }
    }

    static let advice = "the sizes it is made of pass 2^62 together; use a shorter sequence, a smaller micro-batch or a smaller model"

    /// The same error, naming `what` if it named nothing yet.
    public func naming(_ what: String) -> SizeError {
        if case .overflow(let name) = self, name.isEmpty { return .overflow(what: what) }
        return self
    }
}
