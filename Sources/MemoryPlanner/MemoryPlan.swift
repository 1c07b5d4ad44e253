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

    /// What libraries allocate inside a step, as the caller gave it (`BLAS.threadedCallHeapBytes`).
    public let libraries: Int

    /// Training: what the job allocates as the runtime makes it (`TrainingAllocations`: its arena
    /// placed from the program's transient part, every tensor at its jemalloc size class); nil for
    /// generation. Computed when asked (it places the transient part again), not by every search step.
    public var allocations: TrainingAllocations? {
        guard workload.kind == .train, let transient = try? BestFitPlacement(program.transientOnly()).peak else { return nil }
        return TrainingAllocations(shape: carrier, lora: workload.lora, microBatch: workload.microBatch, seqLen: workload.seqLen,
                                   arenaPeak: transient, libraries: libraries)
    }

    /// The peak as jemalloc will count it: training, the base weights as the program sizes them
    /// (full-parameter: the job's fp32 copy as allocated, in `allocations`), the adapter's tensors
    /// and their bound, and `allocations.jobBytes`; no dataset rows (a shape-only plan has none:
    /// train/create adds them). Generation: `peakBytes`.
    public var allocatedPeakBytes: Int {
        guard let allocations else { return peakBytes }
        let adapter = workload.lora.map { TrainingAllocations.adapterPlannedBytes(carrier, $0) } ?? 0
        let baseWeights = workload.lora == nil ? 0 : program.buffers.filter { $0.kind == .weight }.reduce(0) { $0 + $1.bytes }
        return baseWeights + adapter + allocations.jobBytes
    }

    /// Throws `SizeError` for a shape or workload past `SizeLimits` (or whose sizes overflow
    /// together), `PruningError` for a pruning the shape cannot take. `libraries`: what libraries
    /// allocate inside a step (`BLAS.threadedCallHeapBytes`).
    public init(original: ModelShape, pruning: Pruning? = nil, workload: Workload, libraries: Int = 0) throws {
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
        self.libraries = libraries
    }
}
