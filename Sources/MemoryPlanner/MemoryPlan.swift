/// A workload planned on a model: the step description, its placement in one arena, the peak,
/// the lower bound, where the bytes go, and what the paper's accounting says of the same model.
public struct MemoryPlan: Sendable {
    public let original: ModelShape
    /// The shape that is actually held: the original, or its pruned carrier.
    public let carrier: ModelShape
    public let pruning: Pruning?
    public let workload: Workload
    public let program: StepProgram
    public let placement: BestFitPlacement

    public var peakBytes: Int { placement.peak }
    public var lowerBoundBytes: Int { placement.lowerBound }

    /// Bytes by kind at the moment the most bytes are live (they sum to the lower bound).
    public var breakdown: [BufferKind: Int] { placement.breakdownAtPeak }

    public let accounting: ParameterAccounting

    /// The paper's parameter-storage bytes (§3.1): carrier parameters × 2 bytes, a quarter of that
    /// for a 4-bit base. It ignores adapters, optimizer state, activations and quantisation constants.
    public let paperBytes: Int

    /// Throws `SizeError` for a shape or workload past `SizeLimits` (or whose sizes overflow
    /// together), `PruningError` for a pruning the shape cannot take.
    public init(original: ModelShape, pruning: Pruning? = nil, workload: Workload) throws {
        self.original = original
        self.pruning = pruning
        self.workload = workload
        try original.checkSizes()
        carrier = try pruning.map { try original.pruned($0) } ?? original
        program = try workload.kind == .train ? StepProgramBuilder.trainingStep(carrier, workload) : StepProgramBuilder.generation(carrier, workload)
        try program.validate()
        placement = try BestFitPlacement(program)
        accounting = ParameterAccounting(original: try original.parameterCount, pruned: try carrier.parameterCount)
        // Within SizeLimits.parameters, × 2 cannot overflow.
        let parameters = try pruning.map { try original.prunedParameterCount($0) } ?? carrier.parameterCount
        paperBytes = (workload.baseDType == .nf4 ? parameters / 4 : parameters) * 2
    }
}
