/// Everything about a model that memory depends on, and nothing else: widths per layer, vocab,
/// head dim, tied embeddings. Built from a config.json alone, a preset, or a loaded (possibly
/// pruned) model, so plans need no weights.
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

    public init(hidden: Int, headDim: Int, vocab: Int, tiedEmbeddings: Bool, layers: [Layer]) {
        self.hidden = hidden
        self.headDim = headDim
        self.vocab = vocab
        self.tiedEmbeddings = tiedEmbeddings
        self.layers = layers
    }

    /// A model whose layers all have the same widths.
    public init(hidden: Int, intermediate: Int, layerCount: Int, heads: Int, kvHeads: Int, headDim: Int? = nil,
                vocab: Int, tiedEmbeddings: Bool = false) {
        self.init(hidden: hidden, headDim: headDim ?? hidden / heads, vocab: vocab, tiedEmbeddings: tiedEmbeddings,
                  layers: Array(repeating: Layer(heads: heads, kvHeads: kvHeads, intermediate: intermediate), count: layerCount))
    }

    /// Weights of one layer's seven linears.
    public func linearParameters(_ layer: Layer) throws -> Int {
        try CheckedSize.named("one layer's parameters") {
            let h = CheckedSize(hidden), d = headDim
            return try 2 * h * layer.heads * d + 2 * h * layer.kvHeads * d + 3 * h * layer.intermediate
        }
    }

    /// Every parameter: embeddings, lm_head (unless tied), linears, norms (2 per layer + final).
    public var parameterCount: Int {
        get throws {
            try CheckedSize.named("the model's parameters") {
                let linears = try CheckedSize.sum(layers.map { CheckedSize(try linearParameters($0)) })
                return try linears + (tiedEmbeddings ? 1 : 2) * CheckedSize(vocab) * hidden + (2 * layers.count + 1) * CheckedSize(hidden)
            }
        }
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
