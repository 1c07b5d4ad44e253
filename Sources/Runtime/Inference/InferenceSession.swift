import MemoryPlanner

/// Runs a `DecoderModel` over tokens with a KV cache: prefill in chunks of `chunkSize` tokens
/// (sgemm), decoding one token at a time (sgemv), through the same `DecoderBlock` forward
/// training uses. Every buffer a forward pass touches is a buffer of the session's placed
/// generation program (`StepProgramBuilder.generation`), taken by name; nothing is allocated per token.
///
/// With a LoRA `adapter`, every targeted linear (lm_head included) computes
/// y = x·Wᵀ + scaling·(x·Aᵀ)·Bᵀ through a [T, r] workspace; no dropout at inference.
///
/// Axes: T tokens in the chunk, C hidden, H query heads, KV kv heads, D head dim, I MLP width,
/// V vocab, P positions in the cache.
public final class InferenceSession: @unchecked Sendable {
    public enum Logits {
        case none
        /// The last token's logits (V) into the buffer.
        case last(UnsafeMutablePointer<Float>)
        /// Every token's logits (T, V) into the buffer.
        case all(UnsafeMutablePointer<Float>)
        /// Each chunk's logits (chunkSize, V) into the buffer, handed to the closure with the
        /// chunk's first token index and row count before the next chunk overwrites them.
        case eachChunk(UnsafeMutablePointer<Float>, (_ firstToken: Int, _ rows: Int) throws -> Void)
    }

    /// Where a hidden state comes from, as transformers' `output_hidden_states` numbers them.
    public enum HiddenState: Hashable {
        case embeddings
        case layer(Int)
        /// The last layer's output after the final RMSNorm.
        case finalNorm
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tokenOutOfRange(index: Int, id: Int, vocabSize: Int)
        case contextFull(capacity: Int, needed: Int)

        public var description: String {
            switch self {
            case let .tokenOutOfRange(index, id, vocab): return "token \(index) is id \(id), outside the vocabulary 0..<\(vocab)"
            case let .contextFull(capacity, needed): return "the context needs \(needed) positions, the cache holds \(capacity)"
            }
        }
    }

    /// Prefill chunk: bigger chunks make bigger, more efficient matmuls but a bigger workspace.
    public static let defaultChunkSize = StepProgramBuilder.inferenceChunk

    public let model: DecoderModel
    public let cache: KVCache
    public let chunkSize: Int
    /// The LoRA adapter applied on top of the weights, if any.
    public let adapter: LoRAAdapter?
    /// The placed generation program every buffer of the session lives in.
    public let arena: PlannedBuffers
    let rope: RotaryEmbedding
    private let weights: StepWeights
    /// Every layer's block (one shared forward with training), and the one set of buffers they all use.
    private let blocks: [DecoderBlock]
    private let buffers: DecoderBlock.Activations
    private let workspace: LoRALinear.Workspace
    private let x, xn, scores, ropeTable: UnsafeMutablePointer<Float>
    /// The sliding layers' rope and angles where they differ (Gemma 3).
    private let localRope: RotaryEmbedding?
    private let localRopeTable: UnsafeMutablePointer<Float>?
    private let scoreCapacity: Int
    private let outputHead: LoRALinear
    private let loraU: UnsafeMutablePointer<Float>?
    /// `logitsRows` rows of logits (logitsRows, V): one for a generation loop, every token for a
    /// forward that returns all logits, a prefill chunk for perplexity.
    public let logits: UnsafeMutablePointer<Float>
    public let logitsRows: Int
    /// The first row of `logits`, for a generation loop.
    public var logitsRow: UnsafeMutablePointer<Float> { logits }

    /// The generation program of a session: its transient part is what the arena holds.
    public static func program(model: DecoderModel, capacity: Int, chunkSize: Int = defaultChunkSize, adapter: LoRAAdapter? = nil,
                               logitsRows: Int = 1) throws -> StepProgram {
        try StepProgramBuilder.generation(model.config.modelShape, Workload(
            kind: .generate, seqLen: max(1, capacity), lora: adapter.map { Workload.LoRA(r: $0.rank, targets: $0.targets) },
            baseDType: model.baseDType, logitsRows: max(1, logitsRows)), chunk: max(1, chunkSize))
    }

    /// `adapter` must fit `model` (`LoRAAdapter.checkFits`). `arena`: the session's program
    /// (`program(…)` for the same settings) already placed; nil places it here. `matmul`: how
    /// prefill's products are computed. Throws when the program cannot be placed or its arena made.
    public init(model: DecoderModel, capacity: Int, chunkSize: Int = InferenceSession.defaultChunkSize, adapter: LoRAAdapter? = nil,
                logitsRows: Int = 1, arena: PlannedBuffers? = nil, matmul: MatmulDType = .processDefault) throws {
        let config = model.config
        let arena = try arena ?? PlannedBuffers(Self.program(model: model, capacity: capacity, chunkSize: chunkSize, adapter: adapter,
                                                             logitsRows: logitsRows))
        self.arena = arena
        self.model = model
        self.chunkSize = max(1, chunkSize)
        self.adapter = adapter
        if let adapter {
            do { try adapter.checkFits(model) } catch { preconditionFailure("the adapter does not fit the model: \(error)") }
        }
        func buffer(_ b: GenerationBuffers) -> UnsafeMutablePointer<Float> { arena.require(b.rawValue) }
        precondition(arena.floatCount(GenerationBuffers.rope.rawValue) == self.chunkSize * config.headDim,
                     "the session's arena is planned for another chunk size")
        let shape = config.modelShape
        cache = KVCache(kvHeads: model.layers.map(\.shape.kvHeads), headDim: config.headDim, capacity: max(1, capacity),
                        slots: shape.kvSlots(positions: max(1, capacity), chunk: self.chunkSize), windows: shape.windows)
        rope = RotaryEmbedding(config: config)
        localRope = RotaryEmbedding.local(config)
        localRopeTable = arena.floats(GenerationBuffers.ropeLocal.rawValue)
        precondition((localRope == nil) == (localRopeTable == nil), "the session's arena is planned for another family")
        weights = StepWeights(model: model, copy: false)
        (x, xn, scores, ropeTable) = (buffer(.hidden), buffer(.norm), buffer(.scores), buffer(.rope))
        scoreCapacity = arena.floatCount(GenerationBuffers.scores.rawValue)
        let loraU = arena.floats(GenerationBuffers.loraU.rawValue)
        self.loraU = loraU
        var shared = DecoderBlock.Activations(input: x, attentionNorm: xn, q: buffer(.q), k: buffer(.k), v: buffer(.v),
                                              attention: buffer(.attention), residual: x, mlpNorm: xn, gate: buffer(.gate),
                                              up: buffer(.up), act: buffer(.gate))
        if let loraU, let adapter { for target in LoRATarget.layerTargets where adapter.targets.contains(target) { shared.loraU[target] = loraU } }
        // One buffer for both blocks' outputs before their norms (Gemma 3); no rms kept.
        let blockOutput = arena.floats(GenerationBuffers.blockOutput.rawValue)
        (shared.attentionOutput, shared.mlpOutput) = (blockOutput, blockOutput)
        buffers = shared
        // An fp32 model reads its weights in place and has no scratch planned (nor ever touches one).
        workspace = LoRALinear.Workspace(scratch: arena.floats(GenerationBuffers.weightScratch.rawValue) ?? x,
                                         scratchCount: arena.floatCount(GenerationBuffers.weightScratch.rawValue), matmul: matmul)
        let rope = self.rope, weights = self.weights
        blocks = weights.layers.enumerated().map {
            DecoderBlock(layer: $0.element, index: $0.offset, adapter: adapter, dropoutSeed: nil, config: config, rope: rope)
        }
        outputHead = LoRALinear(weight: weights.lmHead, pair: adapter?.lmHead, scaling: adapter?.scaling ?? 0, dropout: nil)
        logits = buffer(.logits)
        self.logitsRows = arena.floatCount(GenerationBuffers.logits.rawValue) / config.vocabSize
    }

    public var length: Int { cache.length }

    public func reset() { cache.reset() }

    /// Runs `tokens` at positions length…length+T-1 and appends them to the cache.
    /// `checkpoint` runs between chunks (cancellation); `observe` sees hidden states (tests).
    public func forward(_ tokens: [Int], logits: Logits = .none,
                        observe: ((HiddenState, UnsafePointer<Float>, _ rows: Int, _ firstToken: Int) -> Void)? = nil,
                        checkpoint: () throws -> Void = {}) throws {
        if let adapter {
            try adapter.access.reading { try forwardUnlocked(tokens, logits: logits, observe: observe, checkpoint: checkpoint) }
        } else {
            try forwardUnlocked(tokens, logits: logits, observe: observe, checkpoint: checkpoint)
        }
    }

    private func forwardUnlocked(_ tokens: [Int], logits: Logits,
                                 observe: ((HiddenState, UnsafePointer<Float>, _ rows: Int, _ firstToken: Int) -> Void)?,
                                 checkpoint: () throws -> Void) throws {
        let vocab = model.config.vocabSize
        if let bad = tokens.firstIndex(where: { $0 < 0 || $0 >= vocab }) {
            throw Failure.tokenOutOfRange(index: bad, id: tokens[bad], vocabSize: vocab)
        }
        guard cache.length + tokens.count <= cache.capacity else {
            throw Failure.contextFull(capacity: cache.capacity, needed: cache.length + tokens.count)
        }
        var start = 0
        while start < tokens.count {
            try checkpoint()
            let n = min(chunkSize, tokens.count - start)
            tokens[start..<(start + n)].withUnsafeBufferPointer { chunk in
                forwardChunk(chunk, observe: observe, firstToken: start)
            }
            let isLastChunk = start + n == tokens.count
            switch logits {
            case .none:
                if observe != nil { finalNorm(rows: n, observe: observe, firstToken: start) }
            case .all(let out):
                finalNorm(rows: n, observe: observe, firstToken: start)
                outputProjection(xn, rows: n, out + start * vocab)
            case .eachChunk(let out, let consume):
                finalNorm(rows: n, observe: observe, firstToken: start)
                outputProjection(xn, rows: n, out)
                try consume(start, n)
            case .last(let out):
                if observe != nil {
                    finalNorm(rows: n, observe: observe, firstToken: start)
                    if isLastChunk { outputProjection(xn + (n - 1) * model.config.hiddenSize, rows: 1, out) }
                } else if isLastChunk {
                    let c = model.config.hiddenSize
                    RMSNorm.forward(x + (n - 1) * c, weight: model.finalNorm, out: xn, rows: 1, cols: c, eps: model.config.rmsNormEps)
                    outputProjection(xn, rows: 1, out)
                }
            }
            start += n
        }
    }

    private func finalNorm(rows: Int, observe: ((HiddenState, UnsafePointer<Float>, Int, Int) -> Void)?, firstToken: Int) {
        RMSNorm.forward(x, weight: model.finalNorm, out: xn, rows: rows, cols: model.config.hiddenSize, eps: model.config.rmsNormEps)
        observe?(.finalNorm, xn, rows, firstToken)
    }

    /// logits = x·lm_headᵀ (+ the adapter's lm_head pair).
    private func outputProjection(_ input: UnsafePointer<Float>, rows: Int, _ out: UnsafeMutablePointer<Float>) {
        outputHead.forward(input, rows: rows, out: out, u: loraU, workspace: workspace)
    }

    /// One chunk of T tokens through every layer; leaves the residual stream in `x`.
    private func forwardChunk(_ tokens: UnsafeBufferPointer<Int>, observe: ((HiddenState, UnsafePointer<Float>, Int, Int) -> Void)?,
                              firstToken: Int) {
        let n = tokens.count, position = cache.length
        Embedding.forward(tokens, table: model.embedding, out: x, hidden: model.config.hiddenSize, scale: model.config.embeddingScale)
        observe?(.embeddings, x, n, firstToken)
        rope.fillTable(ropeTable, tokens: n, position: position)
        if let localRope, let localRopeTable { localRope.fillTable(localRopeTable, tokens: n, position: position) }
        for (l, block) in blocks.enumerated() {
            block.attentionForward(buffers, rows: n, attention: .cached(cache, layer: l, position: position, scores: scores,
                                                                        scoreCapacity: scoreCapacity),
                                   ropeTable: block.localRope ? localRopeTable! : ropeTable, workspace: workspace)
            block.mlpForward(buffers, rows: n, output: x, workspace: workspace)
            observe?(.layer(l), x, n, firstToken)
        }
        cache.length = position + n
    }
}
