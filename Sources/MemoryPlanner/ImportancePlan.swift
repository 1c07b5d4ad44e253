/// The pruning phase of LoRAM-Stru, planned like any step: first-order Taylor importance
/// |W·∂L/∂W| needs the gradient of every weight of the ORIGINAL model over calibration batches
/// (LLM-Pruner: 10 samples of 64 tokens). It is a forward and backward over an fp32 copy of the
/// model with gradients for the decoder linears only (the scored tensors; embeddings, norms and
/// lm_head are frozen) and no optimizer state, so it is often the largest phase of the pipeline
/// even when the carrier trains in a fraction of the memory; `random` and `l2` need no such phase.
/// Runtime's `TaylorCalibration` runs in this very plan.
public struct ImportancePlan: Sendable {
    public static let defaultSeqLen = 64

    public let original: ModelShape
    public let microBatch: Int
    public let seqLen: Int
    public let program: StepProgram
    public let placement: BestFitPlacement

    public var peakBytes: Int { placement.peak }

    /// The parameters Taylor importance scores, and so needs gradients for: every decoder linear.
    public static func scoredParameters(_ shape: ModelShape) throws -> Int {
        try CheckedSize.named("the scored parameters") { try CheckedSize.sum(shape.layers.map { CheckedSize(try shape.linearParameters($0)) }) }
    }

    public var breakdown: [BufferKind: Int] { placement.breakdownAtPeak }

    public init(original: ModelShape, microBatch: Int = 1, seqLen: Int = ImportancePlan.defaultSeqLen, checkpointing: Bool = false) throws {
        self.original = original
        self.microBatch = microBatch
        self.seqLen = seqLen
        try original.checkSizes()
        program = try StepProgramBuilder.trainingStep(original, Workload(kind: .train, microBatch: microBatch, seqLen: seqLen, checkpointing: checkpointing),
                                                      optimizer: false, trainableParameters: try Self.scoredParameters(original))
        try program.validate()
        placement = try BestFitPlacement(program)
    }
}
