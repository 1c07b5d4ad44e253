import MemoryPlanner

/// The weights a step reads, training or inference. For LoRA and inference they are the loaded model's own (read-only, in
/// whatever dtype it holds); for full-parameter training they are an owned fp32 copy the job
/// updates in place. Norms and biases always live in owned buffers so they can be trained.
public final class StepWeights: @unchecked Sendable {
    public struct Layer: LayerLinears {
        public let shape: ModelShape.Layer
        /// Every 1-D tensor of the layer (norms, biases, per-head norms) by role, with its length.
        public let vectors: [TensorSpec.Role: (pointer: UnsafeMutablePointer<Float>, count: Int)]
        public let q, k, v, o, gate, up, down: Weight

        public func vector(_ role: TensorSpec.Role) -> UnsafeMutablePointer<Float>? { vectors[role]?.pointer }
        public var inputNorm: UnsafeMutablePointer<Float> { vectors[.norm(.attentionInput)]!.pointer }
        public var postAttentionNorm: UnsafeMutablePointer<Float> { vectors[.norm(.mlpInput)]!.pointer }
    }

    public let config: ModelConfig
    public let embedding: Weight
    public let layers: [Layer]
    public let finalNorm: UnsafeMutablePointer<Float>
    public let lmHead: Weight
    /// The model's pruning manifest, carried into snapshots so a trained carrier stays recoverable.
    public let pruning: PruningManifest?
    private let norms: FloatBuffers

    /// `copy`: an owned fp32 copy of every weight (full-parameter training); else the model's own.
    /// `untie` (with `copy`, on a tied model): the input embedding becomes an fp32 copy of its own
    /// and the output head stays the model's embedding as held (read-only, never trained), so
    /// alignment can train the embeddings while the head stays the original's (LoRAM §1.2).
    public init(model: DecoderModel, copy: Bool, untie: Bool = false) {
        let untying = copy && untie && model.config.tiedEmbeddings
        var config = model.config
        var pruning = model.pruning
        if untying {
            config.tiedEmbeddings = false
            if pruning != nil, pruning?.originalTiedEmbeddings == nil { pruning?.originalTiedEmbeddings = true }
        }
        self.config = config
        self.pruning = pruning
        norms = FloatBuffers()
        func take(_ w: Weight) -> Weight {
            guard copy else { return w }
            // Callers refuse full-parameter training of an NF4 model first (train/create, train/resume).
            precondition(w.nf4 == nil, "an NF4 model is a frozen base: train a LoRA adapter on it")
            let owned = Weight(rows: w.rows, cols: w.cols, dtype: .f32)
            let values = w.toArray()
            values.withUnsafeBufferPointer { owned.assign($0.baseAddress!) }
            return owned
        }
        let norms = self.norms as FloatBuffers
        func norm(_ values: [Float]) -> UnsafeMutablePointer<Float> {
            let buffer = norms.make(values.count)
            buffer.update(from: values, count: values.count)
            return buffer
        }
        embedding = take(model.embedding)
        lmHead = untying ? model.embedding : model.config.tiedEmbeddings ? embedding : take(model.lmHead)
        layers = model.layers.map { layer in
            Layer(shape: layer.shape, vectors: layer.vectors.mapValues { (norm($0), $0.count) },
                  q: take(layer.q), k: take(layer.k), v: take(layer.v), o: take(layer.o),
                  gate: take(layer.gate), up: take(layer.up), down: take(layer.down))
        }
        finalNorm = norm(model.finalNorm)
    }

    /// A DecoderModel over these weights as they are now (norms copied), for evaluation and saving.
    /// `alignment`: training to add to a carrier's manifest (the steps and tokens just taken).
    public func snapshot(alignment: PruningManifest.Alignment? = nil) -> DecoderModel {
        var pruning = self.pruning
        if let alignment, pruning != nil {
            let before = pruning?.alignment
            pruning?.alignment = .init(steps: (before?.steps ?? 0) + alignment.steps, tokens: (before?.tokens ?? 0) + alignment.tokens)
        }
        func array(_ p: UnsafeMutablePointer<Float>, _ count: Int) -> [Float] { Array(UnsafeBufferPointer(start: p, count: count)) }
        return DecoderModel(config: config, embedding: embedding, layers: layers.map { l in
            DecoderModel.DecoderLayer(shape: l.shape, vectors: l.vectors.mapValues { array($0.pointer, $0.count) },
                                    q: l.q, k: l.k, v: l.v, o: l.o, gate: l.gate, up: l.up, down: l.down)
        }, finalNorm: array(finalNorm, config.hiddenSize), lmHead: config.tiedEmbeddings ? nil : lmHead, pruning: pruning)
    }
}
