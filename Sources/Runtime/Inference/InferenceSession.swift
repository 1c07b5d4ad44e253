import MemoryPlanner

/// Runs a `LlamaModel` over tokens with a KV cache: prefill in chunks of `chunkSize` tokens
/// (sgemm), decoding one token at a time (sgemv). Every buffer a forward pass touches is
/// allocated here, once, sized from the model; nothing is allocated per token.
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
    public static let defaultChunkSize = 256

    public let model: LlamaModel
    public let cache: KVCache
    public let chunkSize: Int
    /// The LoRA adapter applied on top of the weights, if any.
    public let adapter: LoRAAdapter?
    let rope: RotaryEmbedding
    /// Per layer, the adapter's pairs in `LoRATarget.layerTargets` order (nil: not targeted);
    /// empty without an adapter.
    private let loraPairs: [[LoRAPair?]]
    private let loraScaling: Float
    private let loraWorkspace: UnsafeMutablePointer<Float>?

    // Workspace, sized for the widest layer.
    private let x, xn, q, k, v, att, gate, up: UnsafeMutablePointer<Float>
    private let scores: UnsafeMutablePointer<Float>
    private let scoreCapacity: Int
    private let ropeTable: UnsafeMutablePointer<Float>
    private let weightScratch: UnsafeMutablePointer<Float>
    private let weightScratchCount: Int
    public let workspaceBytes: Int
    /// The planned arena the buffers live in, when there is one.
    public let arena: PlannedBuffers?
    /// `logitsRows` rows of logits (logitsRows, V): one for a generation loop, every token for a
    /// forward that returns all logits, a prefill chunk for perplexity.
    public let logits: UnsafeMutablePointer<Float>
    public let logitsRows: Int
    /// The first row of `logits`, for a generation loop.
    public var logitsRow: UnsafeMutablePointer<Float> { logits }

    /// `adapter` must fit `model` (`LoRAAdapter.checkFits`).
    /// `arena`: the session's planned arena (the transient part of `StepProgramBuilder.generation`
    /// for this capacity, `logitsRows` and the default chunk); every buffer is then a view into it.
    public init(model: LlamaModel, capacity: Int, chunkSize: Int = InferenceSession.defaultChunkSize, adapter: LoRAAdapter? = nil,
                logitsRows: Int = 1, arena: PlannedBuffers? = nil) {
        let config = model.config
        self.arena = arena
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            arena?.take("session.workspace", floats: count) ?? .allocate(capacity: max(1, count))
        }
        self.model = model
        self.chunkSize = max(1, chunkSize)
        self.adapter = adapter
        if let adapter {
            do { try adapter.checkFits(model) } catch { preconditionFailure("the adapter does not fit the model: \(error)") }
        }
        loraPairs = adapter.map { adapter in adapter.layers.map { pairs in LoRATarget.layerTargets.map { pairs[$0] } } } ?? []
        loraScaling = adapter?.scaling ?? 0
        cache = KVCache(kvHeads: model.layers.map(\.shape.kvHeadCount), headDim: config.headDim, capacity: max(1, capacity))
        rope = RotaryEmbedding(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
        let t = self.chunkSize, c = config.hiddenSize, d = config.headDim
        let h = model.layers.map(\.shape.headCount).max() ?? 1
        let kv = model.layers.map(\.shape.kvHeadCount).max() ?? 1
        let i = model.layers.map(\.shape.intermediateSize).max() ?? 1
        // Every head's scores for a block of query rows against every cached key: at least one
        // row per head; long contexts use fewer rows per block to stay under 64 MB.
        scoreCapacity = max(h * capacity, min(h * min(t, CausalAttention.maxBlockRows) * capacity, 16 << 20))
        weightScratchCount = StepProgramBuilder.inferenceScratchFloats(base: model.baseDType)
        let sizes = [t * c, t * c, t * h * d, t * kv * d, t * kv * d, t * h * d, t * i, t * i]
        let buffers = sizes.map(take)
        (x, xn, q, k, v, att, gate, up) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5], buffers[6], buffers[7])
        scores = take(scoreCapacity)
        ropeTable = take(t * d)
        weightScratch = take(weightScratchCount)
        loraWorkspace = adapter.map { take(t * $0.rank) }
        self.logitsRows = max(1, logitsRows)
        logits = arena?.take("logits", floats: self.logitsRows * config.vocabSize) ?? .allocate(capacity: self.logitsRows * config.vocabSize)
        arena?.checkFullyUsed()
        workspaceBytes = 4 * (sizes.reduce(0, +) + scoreCapacity + t * d + weightScratchCount + t * (adapter?.rank ?? 0))
    }

    deinit {
        guard arena == nil else { return }
        for buffer in [x, xn, q, k, v, att, gate, up, scores, ropeTable, weightScratch, logits] { buffer.deallocate() }
        loraWorkspace?.deallocate()
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

    @inline(__always)
    private func linear(_ input: UnsafePointer<Float>, rows: Int, _ weight: Weight, _ out: UnsafeMutablePointer<Float>,
                        accumulate: Bool = false) {
        Linear.forward(input, rows: rows, weight: weight, out: out, accumulate: accumulate,
                       scratch: weightScratch, scratchCount: weightScratchCount)
    }

    /// logits = x·lm_headᵀ (+ the adapter's lm_head pair).
    private func outputProjection(_ input: UnsafePointer<Float>, rows: Int, _ out: UnsafeMutablePointer<Float>) {
        linear(input, rows: rows, model.lmHead, out)
        if let pair = adapter?.lmHead {
            LoRALinear.forward(input, rows: rows, pair: pair, scaling: loraScaling, out: out, workspace: loraWorkspace!)
        }
    }

    /// Adds the adapter's share to a linear's output: `slot` is the target's index in
    /// `LoRATarget.layerTargets`.
    @inline(__always)
    private func lora(_ pairs: [LoRAPair?]?, _ slot: Int, _ input: UnsafePointer<Float>, rows: Int, _ out: UnsafeMutablePointer<Float>) {
        guard let pair = pairs?[slot] else { return }
        LoRALinear.forward(input, rows: rows, pair: pair, scaling: loraScaling, out: out, workspace: loraWorkspace!)
    }

    /// One chunk of T tokens through every layer; leaves the residual stream in `x`.
    private func forwardChunk(_ tokens: UnsafeBufferPointer<Int>, observe: ((HiddenState, UnsafePointer<Float>, Int, Int) -> Void)?,
                              firstToken: Int) {
        let config = model.config
        let c = config.hiddenSize, d = config.headDim, n = tokens.count
        let position = cache.length
        for (t, id) in tokens.enumerated() {
            let row = model.embedding.rows(id..<(id + 1), scratch: x + t * c)
            if row != UnsafePointer(x + t * c) { (x + t * c).update(from: row, count: c) }
        }
        observe?(.embeddings, x, n, firstToken)
        rope.fillTable(ropeTable, tokens: n, position: position)
        for (l, layer) in model.layers.enumerated() {
            let h = layer.shape.headCount, kv = layer.shape.kvHeadCount, inter = layer.shape.intermediateSize
            let pairs: [LoRAPair?]? = loraPairs.isEmpty ? nil : loraPairs[l]
            // Attention block: x += o(attention(rope(q(norm(x))), rope(k(…)), v(…)))
            layer.inputNorm.withUnsafeBufferPointer {
                RMSNorm.forward(x, weight: $0.baseAddress!, out: xn, rows: n, cols: c, eps: config.rmsNormEps)
            }
            linear(xn, rows: n, layer.q, q)
            lora(pairs, 0, xn, rows: n, q)
            linear(xn, rows: n, layer.k, k)
            lora(pairs, 1, xn, rows: n, k)
            linear(xn, rows: n, layer.v, v)
            lora(pairs, 2, xn, rows: n, v)
            rope.apply(q, tokens: n, heads: h, rowStride: h * d, table: ropeTable)
            rope.apply(k, tokens: n, heads: kv, rowStride: kv * d, table: ropeTable)
            cache.store(layer: l, k: k, v: v, tokens: n, position: position)
            CausalAttention.forward(q: q, out: att, tokens: n, position: position, heads: h, kvHeads: kv,
                                    layer: l, cache: cache, scores: scores, scoreCapacity: scoreCapacity)
            linear(att, rows: n, layer.o, x, accumulate: true)
            lora(pairs, 3, att, rows: n, x)
            // MLP block: x += down(silu(gate(norm(x))) · up(norm(x)))
            layer.postAttentionNorm.withUnsafeBufferPointer {
                RMSNorm.forward(x, weight: $0.baseAddress!, out: xn, rows: n, cols: c, eps: config.rmsNormEps)
            }
            linear(xn, rows: n, layer.gate, gate)
            lora(pairs, 4, xn, rows: n, gate)
            linear(xn, rows: n, layer.up, up)
            lora(pairs, 5, xn, rows: n, up)
            SwiGLU.forward(gate: gate, up: up, out: gate, count: n * inter)
            linear(gate, rows: n, layer.down, x, accumulate: true)
            lora(pairs, 6, gate, rows: n, x)
            observe?(.layer(l), x, n, firstToken)
        }
        cache.length = position + n
    }
}
