/// Builds the step description of a workload on a model shape: the buffers a training step
/// (`trainingStep`) or a generation (`generation`) holds, each named and sized once, in the order
/// they come and go, and the ops that make and drop them. A dry run needs nothing else; the
/// runtime runs in the placed program, taking every buffer by its name and walking the ops.
public enum StepProgramBuilder {
    public static let inferenceScratchFloats = 1 << 22

    /// The scratch a session widens (or dequantizes) weights into, block by block: none when every
    /// weight is fp32 and used in place.
    public static func inferenceScratchFloats(base: Workload.BaseDType) -> Int {
        base == .f32 ? 0 : inferenceScratchFloats
    }
    public static let inferenceChunk = 256
    public static let attentionBlockRows = 128

    /// The weights held for `base`: decoder linears in its dtype, the rest (a layer's norms and
    /// biases too) in 16 bits (fp32 for f32).
    static func addWeights(_ program: inout StepProgram, _ shape: ModelShape, base: Workload.BaseDType) throws {
        let c = CheckedSize(shape.hidden), other = base.otherBytesPerParameter
        try program.buffer("weights.embed_tokens", kind: .weight, persistent: true) { try shape.vocab * c * other }
        for (l, layer) in shape.layers.enumerated() {
            try program.buffer("layers.\(l).weights", kind: .weight, persistent: true) {
                try CheckedSize(try base.linearBytes(try shape.linearParameters(layer))) + CheckedSize(try shape.vectorParameters(layer)) * other
            }
        }
        try program.buffer("weights.norm", kind: .weight, persistent: true) { try c * other }
        if !shape.tiedEmbeddings { try program.buffer("weights.lm_head", kind: .weight, persistent: true) { try shape.vocab * c * other } }
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
