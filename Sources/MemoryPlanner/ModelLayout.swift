/// One tensor of a model family as its description lists it: its names in transformers and in
/// llama.cpp's GGUF, its shape in the planner's axes, and what it is to the method. Loading,
/// saving, planned bytes, shape checks, gradient buffers, pruning and recovery all read the same
/// entry, so a family's tensor is written down once.
public struct TensorSpec: Codable, Equatable, Sendable {
    /// A width of a tensor's shape. `queryWidth` is H·D and `kvWidth` KV·D of the layer the
    /// tensor is in; `intermediate` its MLP width.
    public enum Axis: String, Codable, Sendable {
        case hidden, vocab, queryWidth, kvWidth, intermediate, headDim
    }

    /// What the tensor is. A `bias` is added to its linear's output; a `headNorm` is an RMSNorm
    /// over the head dimension of each head of q or k (Qwen3, Gemma 3); a `norm` an RMSNorm over
    /// the hidden width at one of the layer's four sites.
    public enum Role: Codable, Hashable, Sendable {
        case embedding, outputHead, finalNorm
        case linear(LoRATarget)
        case bias(LoRATarget)
        case norm(NormSite)
        case headNorm(LoRATarget)
    }

    /// Which whole slices structured pruning removes along an axis: a query head's D rows, a KV
    /// group (a KV head's D rows, its query heads going with it), an MLP neuron; or none.
    public enum Slice: String, Codable, Sendable { case queryHeads, kvGroups, neurons, none }

    /// transformers' name: within `model.layers.N.` for a layer tensor, whole for a global one.
    public var hf: String
    /// llama.cpp's name: within `blk.N.` for a layer tensor, whole for a global one.
    public var gguf: String
    /// transformers' shape, outer axis first ([out, in] for a linear).
    public var axes: [Axis]
    public var role: Role

    public init(hf: String, gguf: String, _ axes: [Axis], _ role: Role) {
        self.hf = hf
        self.gguf = gguf
        self.axes = axes
        self.role = role
    }

    /// The slice rule of each axis, outer first.
    public var slices: [Slice] {
        axes.map {
            switch $0 {
            case .queryWidth: return .queryHeads
            case .kvWidth: return .kvGroups
            case .intermediate: return .neurons
            case .hidden, .vocab, .headDim: return .none
            }
        }
    }

    /// 1-D tensors (norms, biases) stay fp32 in memory, whatever the weights' dtype.
    public var isVector: Bool { axes.count == 1 }

    /// The shape in a layer of `layer`'s widths (global tensors: any layer).
    public func shape(_ layer: ModelShape.Layer, hidden: Int, headDim: Int, vocab: Int) -> [Int] {
        axes.map {
            switch $0 {
            case .hidden: return hidden
            case .vocab: return vocab
            case .queryWidth: return layer.heads * headDim
            case .kvWidth: return layer.kvHeads * headDim
            case .intermediate: return layer.intermediate
            case .headDim: return headDim
            }
        }
    }
}

/// Where in a decoder layer an RMSNorm over the hidden width sits: before attention (every
/// family), on attention's output before the residual add (Gemma), before the MLP (every
/// family), on the MLP's output (Gemma).
public enum NormSite: String, Codable, CaseIterable, Sendable {
    case attentionInput, attentionOutput, mlpInput, mlpOutput
}

/// A family's tensors: the global ones (embedding, final norm, output head) and those of each
/// decoder layer, in the order transformers lists them. The family files of the runtime make
/// theirs from `decoder`, the layer every supported family shares, by adding entries.
public struct ModelLayout: Codable, Equatable, Sendable {
    public var global: [TensorSpec]
    public var layer: [TensorSpec]

    public init(global: [TensorSpec], layer: [TensorSpec]) {
        self.global = global
        self.layer = layer
    }

    /// The decoder every supported family builds on (LLaMA's): token embeddings, per layer an
    /// RMSNorm before attention, q/k/v/o, an RMSNorm before the MLP, gate/up/down; the final norm
    /// and an output head (absent when tied).
    public static let decoder = ModelLayout(
        global: [
            TensorSpec(hf: "model.embed_tokens.weight", gguf: "token_embd.weight", [.vocab, .hidden], .embedding),
            TensorSpec(hf: "model.norm.weight", gguf: "output_norm.weight", [.hidden], .finalNorm),
            TensorSpec(hf: "lm_head.weight", gguf: "output.weight", [.vocab, .hidden], .outputHead),
        ],
        layer: [
            TensorSpec(hf: "input_layernorm.weight", gguf: "attn_norm.weight", [.hidden], .norm(.attentionInput)),
            TensorSpec(hf: "self_attn.q_proj.weight", gguf: "attn_q.weight", [.queryWidth, .hidden], .linear(.q)),
            TensorSpec(hf: "self_attn.k_proj.weight", gguf: "attn_k.weight", [.kvWidth, .hidden], .linear(.k)),
            TensorSpec(hf: "self_attn.v_proj.weight", gguf: "attn_v.weight", [.kvWidth, .hidden], .linear(.v)),
            TensorSpec(hf: "self_attn.o_proj.weight", gguf: "attn_output.weight", [.hidden, .queryWidth], .linear(.o)),
            TensorSpec(hf: "post_attention_layernorm.weight", gguf: "ffn_norm.weight", [.hidden], .norm(.mlpInput)),
            TensorSpec(hf: "mlp.gate_proj.weight", gguf: "ffn_gate.weight", [.intermediate, .hidden], .linear(.gate)),
            TensorSpec(hf: "mlp.up_proj.weight", gguf: "ffn_up.weight", [.intermediate, .hidden], .linear(.up)),
            TensorSpec(hf: "mlp.down_proj.weight", gguf: "ffn_down.weight", [.hidden, .intermediate], .linear(.down)),
        ])

    /// The layer entry of `role`, if the family has one.
    public func layerSpec(_ role: TensorSpec.Role) -> TensorSpec? { layer.first { $0.role == role } }
    public func globalSpec(_ role: TensorSpec.Role) -> TensorSpec? { global.first { $0.role == role } }

    /// The norm sites a layer of this family has, in the order the forward applies them.
    public var normSites: [NormSite] {
        NormSite.allCases.filter { layerSpec(.norm($0)) != nil }
    }

    public func hasBias(_ target: LoRATarget) -> Bool { layerSpec(.bias(target)) != nil }
    /// q and k are RMS-normed per head before RoPE.
    public var hasHeadNorms: Bool { layerSpec(.headNorm(.q)) != nil }

    /// `self` with `specs` inserted after the entry of role `after` (appended when it has none).
    public func adding(_ specs: [TensorSpec], after role: TensorSpec.Role) -> ModelLayout {
        var copy = self
        let index = copy.layer.firstIndex { $0.role == role }.map { $0 + 1 } ?? copy.layer.count
        copy.layer.insert(contentsOf: specs, at: index)
        return copy
    }

    /// `self` with the layer entry of `role` renamed.
    public func renaming(_ role: TensorSpec.Role, hf: String, gguf: String) -> ModelLayout {
        var copy = self
        for i in copy.layer.indices where copy.layer[i].role == role { (copy.layer[i].hf, copy.layer[i].gguf) = (hf, gguf) }
        return copy
    }

    /// The global tensors a model has: the output head only when untied.
    public func globals(tied: Bool) -> [TensorSpec] {
        global.filter { !(tied && $0.role == .outputHead) }
    }

    /// transformers' full name of `spec`: a layer tensor's in layer `index`, a global one's (nil) its own.
    public static func hfName(_ spec: TensorSpec, layer index: Int?) -> String { index.map { "model.layers.\($0).\(spec.hf)" } ?? spec.hf }
    /// GGUF's full name of `spec`, likewise.
    public static func ggufName(_ spec: TensorSpec, layer index: Int?) -> String { index.map { "blk.\($0).\(spec.gguf)" } ?? spec.gguf }
}
