import MemoryPlanner

/// One fp32 gradient buffer per trainable tensor, and nothing for frozen ones: in LoRA mode the
/// adapter's A and B; in full mode every base weight and norm not frozen. The optimizer walks
/// `entries`; the step finds a tensor's buffer by the tensor.
public final class GradientBuffers: @unchecked Sendable {
    public struct Entry {
        /// PEFT's name for adapter tensors, transformers' for base tensors.
        public let name: String
        public let parameter: UnsafeMutablePointer<Float>
        public let gradient: UnsafeMutablePointer<Float>
        public let count: Int
        /// Norm weights and biases get no weight decay, as in transformers' Trainer.
        public let decays: Bool
    }

    public private(set) var entries: [Entry] = []
    private var byWeight: [ObjectIdentifier: UnsafeMutablePointer<Float>] = [:]
    private var byNorm: [UnsafeMutablePointer<Float>: UnsafeMutablePointer<Float>] = [:]
    private let buffers = FloatBuffers()

    public var byteCount: Int { buffers.byteCount }

    /// Gradients for the adapter's pairs only.
    public init(adapter: LoRAAdapter) {
        for (path, pair) in adapter.namedPairs {
            add(weight: pair.a, name: "base_model.model.\(path).lora_A.weight")
            add(weight: pair.b, name: "base_model.model.\(path).lora_B.weight")
        }
    }

    /// Gradients for every base tensor whose name does not contain one of `frozen` (e.g. "lm_head").
    /// A tied embedding is one tensor: frozen if either of its names is.
    public init(weights: StepWeights, frozen: Set<String>) {
        let config = weights.config
        // The planner's rule (FrozenTensors), so the plan counts exactly the gradients made here.
        let rule = FrozenTensors(frozen)
        func isFrozen(_ name: String) -> Bool { rule.contains(name) }
        let c = config.hiddenSize, layout = config.family.layout
        let embeddingName = layout.globalSpec(.embedding)!.hf, headName = layout.globalSpec(.outputHead)!.hf
        if !rule.embeddingFrozen(tied: config.tiedEmbeddings) { add(weight: weights.embedding, name: embeddingName) }
        for (i, layer) in weights.layers.enumerated() {
            // FrozenTensors.tensors' order (linears, then vectors), which the plan counts.
            for spec in layout.layer.filter({ !$0.isVector }) + layout.layer.filter(\.isVector) {
                let name = ModelLayout.hfName(spec, layer: i)
                guard !isFrozen(name) else { continue }
                if case .linear(let target) = spec.role {
                    add(weight: layer.weight(target), name: name)
                } else if let vector = layer.vectors[spec.role] {
                    add(norm: vector.pointer, count: vector.count, name: name)
                }
            }
        }
        let finalName = layout.globalSpec(.finalNorm)!.hf
        if !isFrozen(finalName) { add(norm: weights.finalNorm, count: c, name: finalName) }
        if !config.tiedEmbeddings && !isFrozen(headName) { add(weight: weights.lmHead, name: headName) }
    }

    private func add(weight: Weight, name: String) {
        precondition(weight.dtype == .f32 && !weight.isBorrowed, "\(name): trainable weights must be owned fp32")
        let gradient = buffers.make(weight.elementCount)
        byWeight[ObjectIdentifier(weight)] = gradient
        entries.append(Entry(name: name, parameter: weight.float32!, gradient: gradient, count: weight.elementCount, decays: true))
    }

    private func add(norm: UnsafeMutablePointer<Float>, count: Int, name: String) {
        let gradient = buffers.make(count)
        byNorm[norm] = gradient
        entries.append(Entry(name: name, parameter: norm, gradient: gradient, count: count, decays: false))
    }

    public func gradient(for weight: Weight) -> UnsafeMutablePointer<Float>? { byWeight[ObjectIdentifier(weight)] }
    public func gradient(forNorm norm: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float>? { byNorm[norm] }

    public func zero() {
        for entry in entries { entry.gradient.update(repeating: 0, count: entry.count) }
    }

    public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }
}
