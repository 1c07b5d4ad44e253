/// The freeze rule of full-parameter training, the one both the plan (how many parameters get a
/// gradient and moments) and the runtime (which tensors get gradient buffers) follow: a base
/// tensor is frozen when its name (transformers') contains one of the patterns ("lm_head"); a tied
/// embedding is one tensor, frozen if either of its names is.
public struct FrozenTensors: Sendable {
    public let patterns: Set<String>

    public init(_ patterns: some Sequence<String>) { self.patterns = Set(patterns) }

    public func contains(_ name: String) -> Bool { patterns.contains { name.contains($0) } }

    /// Whether the input embedding is frozen; `tied`: the embedding is also the head, as trained.
    public func embeddingFrozen(tied: Bool) -> Bool {
        contains("model.embed_tokens.weight") || (tied && contains("lm_head.weight"))
    }

    /// The base tensors a model of `shape` trains with, by name and element count; `tied`: as
    /// trained (a tied model untied for training has a head of its own).
    public static func tensors(_ shape: ModelShape, tied: Bool) -> [(name: String, count: Int)] {
        let c = shape.hidden, d = shape.headDim
        var out: [(name: String, count: Int)] = [("model.embed_tokens.weight", shape.vocab * c)]
        for (i, s) in shape.layers.enumerated() {
            let p = "model.layers.\(i)."
            out += [("self_attn.q_proj", s.heads * d * c), ("self_attn.k_proj", s.kvHeads * d * c), ("self_attn.v_proj", s.kvHeads * d * c),
                    ("self_attn.o_proj", c * s.heads * d), ("mlp.gate_proj", s.intermediate * c), ("mlp.up_proj", s.intermediate * c),
                    ("mlp.down_proj", c * s.intermediate), ("input_layernorm", c), ("post_attention_layernorm", c)]
                .map { (p + $0.0 + ".weight", $0.1) }
        }
        out.append(("model.norm.weight", c))
        if !tied { out.append(("lm_head.weight", shape.vocab * c)) }
        return out
    }

    /// Parameters full-parameter training updates: every tensor of `tensors(shape, tied:)` not frozen.
    /// The shape is a loaded model's, within SizeLimits: the products cannot overflow.
    public func trainableParameterCount(_ shape: ModelShape, tied: Bool) -> Int {
        Self.tensors(shape, tied: tied).reduce(0) { total, tensor in
            let frozen = tensor.name == "model.embed_tokens.weight" ? embeddingFrozen(tied: tied) : contains(tensor.name)
            return total + (frozen ? 0 : tensor.count)
        }
    }
}
