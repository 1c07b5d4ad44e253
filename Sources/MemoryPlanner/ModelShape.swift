/// Everything about a model that memory depends on, and nothing else: widths per layer, vocab,
/// head dim, tied embeddings, and the family's tensors (`layout`). Built from a config.json alone,
/// a preset, or a loaded (possibly pruned) model, so plans need no weights.
public struct ModelShape: Codable, Equatable, Sendable {
    /// A decoder layer's widths (a pruned layer has fewer heads and neurons).
    public struct Layer: Codable, Equatable, Sendable {
        public var heads: Int
        public var kvHeads: Int
        public var intermediate: Int
        public init(heads: Int, kvHeads: Int, intermediate: Int) {
            self.heads = heads
            self.kvHeads = kvHeads
            self.intermediate = intermediate
        }
    }

    public var hidden: Int
    public var headDim: Int
    public var vocab: Int
    public var tiedEmbeddings: Bool
    public var layers: [Layer]
    /// The family's tensors (`ModelLayout.decoder` for LLaMA and Mistral).
    public var layout: ModelLayout
    /// Sliding layers rotate with a rope of their own (Gemma 3): a second table of angles.
    public var localRope: Bool
    /// Each layer's attention window (nil: every earlier key); empty: no layer slides.
    public var windows: [Int?]

    public init(hidden: Int, headDim: Int, vocab: Int, tiedEmbeddings: Bool, layers: [Layer], layout: ModelLayout = .decoder,
                localRope: Bool = false, windows: [Int?] = []) {
        self.windows = windows
        self.hidden = hidden
        self.headDim = headDim
        self.vocab = vocab
        self.tiedEmbeddings = tiedEmbeddings
        self.layers = layers
        self.layout = layout
        self.localRope = localRope
    }

    /// A model whose layers all have the same widths.
    public init(hidden: Int, intermediate: Int, layerCount: Int, heads: Int, kvHeads: Int, headDim: Int? = nil,
                vocab: Int, tiedEmbeddings: Bool = false, layout: ModelLayout = .decoder) {
        self.init(hidden: hidden, headDim: headDim ?? hidden / heads, vocab: vocab, tiedEmbeddings: tiedEmbeddings,
                  layers: Array(repeating: Layer(heads: heads, kvHeads: kvHeads, intermediate: intermediate), count: layerCount),
                  layout: layout)
    }

    private enum CodingKeys: String, CodingKey { case hidden, headDim, vocab, tiedEmbeddings, layers, layout, localRope, windows }

    /// A shape encoded without `layout` (before families had one) is LLaMA's.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(hidden: try c.decode(Int.self, forKey: .hidden), headDim: try c.decode(Int.self, forKey: .headDim),
                  vocab: try c.decode(Int.self, forKey: .vocab), tiedEmbeddings: try c.decode(Bool.self, forKey: .tiedEmbeddings),
                  layers: try c.decode([Layer].self, forKey: .layers),
                  layout: try c.decodeIfPresent(ModelLayout.self, forKey: .layout) ?? .decoder,
                  localRope: try c.decodeIfPresent(Bool.self, forKey: .localRope) ?? false,
                  windows: try c.decodeIfPresent([Int?].self, forKey: .windows) ?? [])
    }

    /// Positions each layer's KV cache holds for a sequence of `positions` run in prefill chunks
    /// of up to `chunk` tokens: all of them, or for a sliding layer its window plus a chunk (the
    /// keys the chunk's first query still sees, and the chunk's own).
    public func kvSlots(positions: Int, chunk: Int) -> [Int] {
        layers.indices.map { l in
            guard windows.indices.contains(l), let window = windows[l] else { return positions }
            return min(positions, window + max(1, chunk) - 1)
        }
    }

    /// Elements of tensor `spec` in a layer of `layer`'s widths.
    public func elements(_ spec: TensorSpec, _ layer: Layer) throws -> CheckedSize {
        try spec.shape(layer, hidden: hidden, headDim: headDim, vocab: vocab).reduce(CheckedSize(1)) { try $0 * $1 }
    }

    /// Weights of one layer's linears (what the base dtype sizes; the vectors are charged apart).
    public func linearParameters(_ layer: Layer) throws -> Int {
        try CheckedSize.named("one layer's parameters") {
            try CheckedSize.sum(try layout.layer.filter { !$0.isVector }.map { try elements($0, layer) })
        }
    }

    /// One layer's 1-D tensors: norms, biases, per-head norms.
    public func vectorParameters(_ layer: Layer) throws -> Int {
        try CheckedSize.named("one layer's parameters") {
            try CheckedSize.sum(try layout.layer.filter(\.isVector).map { try elements($0, layer) })
        }
    }

    /// Every parameter: each tensor of `layout`, per layer and global (the head only when untied).
    public var parameterCount: Int {
        get throws {
            try CheckedSize.named("the model's parameters") {
                let perLayer = try CheckedSize.sum(layers.map { try elements(ofLayer: $0) })
                let first = layers.first ?? Layer(heads: 0, kvHeads: 0, intermediate: 0)
                return try perLayer + CheckedSize.sum(try layout.globals(tied: tiedEmbeddings).map { try elements($0, first) })
            }
        }
    }

    private func elements(ofLayer layer: Layer) throws -> CheckedSize {
        try CheckedSize.sum(try layout.layer.map { try elements($0, layer) })
    }

    /// Throws `SizeError.overLimit` naming the config.json field of the first width past its
    /// `SizeLimits` bound (or not positive), or the parameter total past `SizeLimits.parameters`.
    /// Every shape is checked before it is planned; within these bounds any count of parameters
    /// times a few bytes is far from overflow.
    public func checkSizes() throws {
        try SizeLimits.check(layers.count, atMost: SizeLimits.layers, "num_hidden_layers")
        try SizeLimits.check(hidden, atMost: SizeLimits.hidden, "hidden_size")
        try SizeLimits.check(headDim, atMost: SizeLimits.headDim, "head_dim")
        try SizeLimits.check(vocab, atMost: SizeLimits.vocab, "vocab_size")
        for layer in layers {
            try SizeLimits.check(layer.heads, atMost: SizeLimits.heads, "num_attention_heads")
            try SizeLimits.check(layer.kvHeads, atMost: SizeLimits.heads, "num_key_value_heads")
            try SizeLimits.check(layer.intermediate, atMost: SizeLimits.intermediate, "intermediate_size")
        }
        try SizeLimits.check(try parameterCount, atMost: SizeLimits.parameters, "parameters")
    }
}
