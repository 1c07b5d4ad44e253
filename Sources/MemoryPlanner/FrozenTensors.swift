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
        // The shape is a loaded model's, within SizeLimits: the products cannot overflow.
        func count(_ spec: TensorSpec, _ layer: ModelShape.Layer) -> Int { (try? shape.elements(spec, layer).value) ?? 0 }
        let globals = shape.layout.globals(tied: tied)
        let first = shape.layers.first ?? .init(heads: 0, kvHeads: 0, intermediate: 0)
        var out: [(name: String, count: Int)] = globals.filter { $0.role == .embedding }.map { ($0.hf, count($0, first)) }
        for (i, layer) in shape.layers.enumerated() {
            // A layer's linears, then its vectors (norms, biases): the order gradients are made in.
            let specs = shape.layout.layer.filter { !$0.isVector } + shape.layout.layer.filter(\.isVector)
            out += specs.map { (ModelLayout.hfName($0, layer: i), count($0, layer)) }
        }
        out += globals.filter { $0.role != .embedding }.map { ($0.hf, count($0, first)) }
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
