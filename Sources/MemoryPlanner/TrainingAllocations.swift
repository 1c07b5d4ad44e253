import CJemalloc

extension Jemalloc {
    /// The bytes jemalloc reserves for a request of `bytes` at `alignment` (its size class: what
    /// `stats.allocated` counts for it, up to 25% more than asked), without allocating (`nallocx`).
    public static func reservedBytes(_ bytes: Int, alignment: Int = 16) -> Int {
        guard bytes > 0 else { return 0 }
        let reserved = nallocx(bytes, loram_nallocx_flags(max(alignment, 1)))
        return reserved == 0 ? bytes : reserved  // 0: past jemalloc's largest class (the allocation fails anyway)
    }

    /// A Swift array's storage of `capacity` elements of `stride` bytes: one malloc of the 32-byte
    /// header (object header, count, capacity) and the elements; none for an empty array.
    public static func arrayBytes(capacity: Int, stride: Int) -> Int {
        capacity == 0 ? 0 : reservedBytes(32 + capacity * stride)
    }
}

/// What a training job allocates, allocation by allocation as the runtime makes them, each at the
/// bytes jemalloc reserves for it: the one description `train/create`'s plan (and `loram/run`'s
/// planned peak) is the sum of, and what a run's jemalloc-measured peak is checked against
/// (`TrainingMemoryTests`). The step arena's buffers are the step program's (`BestFitPlacement`);
/// this adds the arena's own size class and everything outside it.
///
/// Measured on SmolLM2-135M (30 layers, LoRA r 8 on seven projections, 4 × 128, NF4 carrier), the
/// size classes alone were 19.7 MB over the requested bytes: the 102.3 MB arena sits in jemalloc's
/// 112 MiB class, AdamW's 17.4 MB moments in the 20 MiB one, and 420 adapter and gradient tensors
/// each round up too.
public struct TrainingAllocations: Sendable, Equatable {
    /// The step arena: one 64-aligned region of the placement's peak (`PlanArena`).
    public var arena: Int
    /// LoRA: the adapter's A and B of every pair, each an owned 64-aligned fp32 `Weight` (at least
    /// 64 bytes). Charged to the adapter (adapter/create), not to the job.
    public var adapter: Int
    /// Full-parameter training: the job's fp32 copy of every weight but the norms (64-aligned).
    public var weights: Int
    /// One fp32 buffer per trainable tensor (`GradientBuffers`).
    public var gradients: Int
    /// AdamW's two moments, one allocation of 2 floats per trainable parameter.
    public var optimizer: Int
    /// The norm weights as the step holds them: an owned fp32 buffer per norm (2 per layer and
    /// the final one), in either mode.
    public var norms: Int
    /// What a step allocates while it runs: each micro-batch's ids, labels, lengths and sources,
    /// twice (the pass that counts the labelled tokens, then the step's), and the list of gradient
    /// buffers clipping walks.
    public var step: Int
    /// What libraries allocate for themselves inside a step and free again (OpenBLAS's job table
    /// of a threaded sgemm: `BLAS.threadedCallHeapBytes`), as the caller gives it.
    public var libraries: Int
    /// The rest, not counted one by one: the job's small objects (the step's tables of pointers,
    /// tensor names, dictionaries, `Weight` objects) and what jemalloc's thread caches hold,
    /// which `stats.allocated` counts as allocated. A bound, `bookkeepingBound`.
    public var bookkeeping: Int

    /// Everything but the adapter (charged to the adapter object) and the data rows (planned from
    /// the dataset by train/create, `TrainingData`).
    public var jobBytes: Int { arena + weights + gradients + optimizer + norms + step + libraries + bookkeeping }

    /// Small objects per trainable tensor and per layer, plus 1 MiB for the rest and for what the
    /// thread caches hold. Measured (jemalloc `stats.allocated` around each part of a job, thread
    /// caches off): 165 KB on the small random model (8 layers, 112 tensors); the thread caches
    /// added 255 KB more there (the same run with them on).
    public static func bookkeepingBound(tensors: Int, layers: Int) -> Int { 1 << 20 + 512 * tensors + 4096 * layers }

    /// `arenaPeak`: the placement's peak of the step's transient buffers. `tiedAsHeld`: the model's
    /// embedding is its head as loaded; `frozen`, `untie`: full-parameter training's freeze rule and
    /// untying (train/create's `freeze`, `untieEmbeddings`).
    public init(shape: ModelShape, lora: Workload.LoRA?, microBatch: Int, seqLen: Int, arenaPeak: Int,
                frozen: FrozenTensors = FrozenTensors([]), untie: Bool = false, libraries: Int = 0) {
        self.libraries = libraries
        arena = Jemalloc.reservedBytes(max(arenaPeak, 64), alignment: 64)
        let trainable: [Int]
        if let lora {
            let counts = Self.loraTensors(shape, lora)
            adapter = Self.adapterBytes(shape, lora)
            weights = 0
            trainable = counts
        } else {
            let tied = shape.tiedEmbeddings && !untie
            // Copied: every weight of the model as held (an untied head stays the model's embedding).
            let norm = { (name: String) in name.hasSuffix("layernorm.weight") || name == "model.norm.weight" }
            adapter = 0
            weights = FrozenTensors.tensors(shape, tied: shape.tiedEmbeddings).filter { !norm($0.name) }
                .reduce(0) { $0 + Jemalloc.reservedBytes(max(64, $1.count * 4), alignment: 64) }
            trainable = FrozenTensors.tensors(shape, tied: tied).filter { tensor in
                tensor.name == "model.embed_tokens.weight" ? !frozen.embeddingFrozen(tied: tied) : !frozen.contains(tensor.name)
            }.map(\.count)
        }
        gradients = trainable.reduce(0) { $0 + Jemalloc.reservedBytes(max(1, $1) * 4) }
        let parameters = trainable.reduce(0, +)
        optimizer = Jemalloc.reservedBytes(max(1, 2 * parameters) * 4)
        norms = (2 * shape.layers.count + 1) * Jemalloc.reservedBytes(shape.hidden * 4)
        let t = microBatch * seqLen
        let batch = 2 * Jemalloc.arrayBytes(capacity: t, stride: 8) + Jemalloc.arrayBytes(capacity: microBatch, stride: 8)
            + Jemalloc.arrayBytes(capacity: microBatch, stride: 9)
        step = 2 * batch + Jemalloc.arrayBytes(capacity: trainable.count, stride: 16)
        bookkeeping = Self.bookkeepingBound(tensors: trainable.count, layers: shape.layers.count)
    }

    /// The adapter's tensors as allocated: each an owned 64-aligned fp32 `Weight` of at least 64 bytes.
    public static func adapterBytes(_ shape: ModelShape, _ lora: Workload.LoRA) -> Int {
        loraTensors(shape, lora).reduce(0) { $0 + Jemalloc.reservedBytes(max(64, $1 * 4), alignment: 64) }
    }

    /// The adapter object's small allocations besides its tensors (the `Weight` objects, the
    /// pairs' tables, the registry's entry): measured 94 KB for 112 tensors (the small random
    /// model) with jemalloc's thread caches off; bounded at 64 KiB + 1 KiB a tensor.
    public static func adapterBookkeepingBound(_ shape: ModelShape, _ lora: Workload.LoRA) -> Int {
        64 << 10 + 1024 * loraTensors(shape, lora).count
    }

    /// The adapter as planned: its tensors as allocated and the bound on its small objects.
    public static func adapterPlannedBytes(_ shape: ModelShape, _ lora: Workload.LoRA) -> Int {
        adapterBytes(shape, lora) + adapterBookkeepingBound(shape, lora)
    }

    /// Element counts of the adapter's tensors, A (r × in) then B (out × r) of each pair, in
    /// `LoRAAdapter.namedPairs`' order.
    public static func loraTensors(_ shape: ModelShape, _ lora: Workload.LoRA) -> [Int] {
        let c = shape.hidden, d = shape.headDim, r = lora.r
        var counts: [Int] = []
        for layer in shape.layers {
            for target in LoRATarget.layerTargets where lora.targets.contains(target) {
                let (outputs, inputs): (Int, Int)
                switch target {
                case .q: (outputs, inputs) = (layer.heads * d, c)
                case .k, .v: (outputs, inputs) = (layer.kvHeads * d, c)
                case .o: (outputs, inputs) = (c, layer.heads * d)
                case .gate, .up: (outputs, inputs) = (layer.intermediate, c)
                case .down: (outputs, inputs) = (c, layer.intermediate)
                case .lmHead: continue
                }
                counts += [r * inputs, outputs * r]
            }
        }
        if lora.targets.contains(.lmHead) { counts += [r * c, shape.vocab * r] }
        return counts
    }
}

/// The bytes a training job's rows hold, as the Swift arrays that hold them are allocated.
public enum TrainingData {
    /// Token arrays (ids or labels, 8-byte `Int`s) of these capacities, each its own allocation.
    public static func tokenBytes(capacities: [Int]) -> Int {
        capacities.reduce(0) { $0 + Jemalloc.arrayBytes(capacity: $1, stride: 8) }
    }
}
