import Foundation

/// How a LoRAM training carrier is cut from the original model (paper §1.1). Structured pruning
/// deletes whole heads and MLP neurons, so the shape shrinks; semi-structured (N:M) and unstructured
/// pruning zero weights in place, so the shape stays and only the paper's accounting shrinks.
public enum Pruning: Equatable, Sendable {
    /// Whole heads and neurons at `ratio` in the decoder layers `layers`
    /// (nil: `ModelShape.defaultPrunedLayers`).
    case structured(ratio: Double, layers: Range<Int>? = nil)
    /// `zeros` of every `group` weights along each row, in every decoder linear (2:4 or 4:8: 50 %).
    case semiStructured(zeros: Int, group: Int)
    /// A fraction `sparsity` of every decoder linear's weights.
    case unstructured(sparsity: Double)
}

/// Why a pruning cannot be applied to a shape; names the value and the limit.
public enum PruningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Ratios and sparsities live in [0, 1): at 1 nothing would remain.
    case ratioOutOfRange(Double)
    case layersOutOfRange(Range<Int>, layerCount: Int)
    /// The ratio leaves nothing of `what` ("kv heads", "MLP neurons") in layer `layer`.
    case nothingKept(layer: Int, what: String, ratio: Double)
    case badGroup(zeros: Int, group: Int)

    public var description: String {
        switch self {
        case .ratioOutOfRange(let r): return "pruning ratio \(r) is outside [0, 1)"
        case .layersOutOfRange(let range, let count):
            return "pruned layers [\(range.lowerBound), \(range.upperBound)) do not fit a model of \(count) layers"
        case .nothingKept(let layer, let what, let r):
            return "pruning ratio \(r) keeps no \(what) in layer \(layer); use a smaller ratio"
        case .badGroup(let zeros, let group):
            return "semi-structured pattern \(zeros):\(group) needs 0 <= zeros < group"
        }
    }
}

extension ModelShape {
    /// The layers structured pruning touches when none are named: the paper's [4, L−2) (the first
    /// four and last two layers matter most and stay whole). Models too small for that keep one
    /// layer at each end, [1, L−1), when that leaves a layer to prune (3–6 layers); a model of one or
    /// two layers is pruned throughout, so a tiny test model still shrinks.
    public static func defaultPrunedLayers(layerCount L: Int) -> Range<Int> {
        if L - 2 > 4 { return 4..<(L - 2) }
        if L - 1 > 1 { return 1..<(L - 1) }
        return 0..<max(L, 0)
    }

    /// The shape after structured pruning at `ratio` of `layers` (default: `defaultPrunedLayers`),
    /// with the official code's rules, on the same doubles Python uses so the paper's counts come out:
    /// - MLP: I_kept = I − ceil(I·r).
    /// - MHA (heads == kvHeads): heads_kept = int(H·(1−r)), kv = heads.
    /// - GQA: kv_kept = KV − int(KV·r), heads_kept = kv_kept·(H/KV); whole groups go together.
    /// head_dim, hidden, vocab and the other layers stay.
    public func structurallyPruned(ratio r: Double, layers window: Range<Int>? = nil) throws -> ModelShape {
        guard r >= 0, r < 1 else { throw PruningError.ratioOutOfRange(r) }
        let window = window ?? Self.defaultPrunedLayers(layerCount: layers.count)
        guard window.lowerBound >= 0, window.upperBound <= layers.count else {
            throw PruningError.layersOutOfRange(window, layerCount: layers.count)
        }
        var pruned = self
        for index in window {
            let layer = layers[index]
            let intermediate = layer.intermediate - Int((Double(layer.intermediate) * r).rounded(.up))
            let heads: Int, kvHeads: Int
            if layer.heads == layer.kvHeads {
                heads = Int(Double(layer.heads) * (1 - r))
                kvHeads = heads
            } else {
                kvHeads = layer.kvHeads - Int(Double(layer.kvHeads) * r)
                heads = kvHeads * (layer.heads / layer.kvHeads)
            }
            guard kvHeads >= 1 else { throw PruningError.nothingKept(layer: index, what: "kv heads", ratio: r) }
            guard intermediate >= 1 else { throw PruningError.nothingKept(layer: index, what: "MLP neurons", ratio: r) }
            pruned.layers[index] = Layer(heads: heads, kvHeads: kvHeads, intermediate: intermediate)
        }
        return pruned
    }

    /// The shape a pruning trains on: smaller for structured pruning, unchanged otherwise.
    public func pruned(_ pruning: Pruning) throws -> ModelShape {
        switch pruning {
        case .structured(let r, let window): return try structurallyPruned(ratio: r, layers: window)
        case .semiStructured, .unstructured:
            try validate(pruning)
            return self
        }
    }

    /// The parameter count the paper charges for `pruning` (§3.1). Structured: the pruned shape's
    /// count. Semi-structured and unstructured: every decoder linear keeps its non-zero weights only,
    /// embeddings, lm_head and norms stay whole. Per weight matrix of n weights, N:M removes
    /// n·N/M (exact whenever M divides the row, as in every LLaMA), and sparsity s removes int(n·s)
    /// on doubles, the count SparseGPT's threshold index takes. The paper's own 13B Unst figure,
    /// 6,037,628,912, is 37,872 above the exact 55 % computed here (6,037,591,040); the ratio is
    /// 2.16 either way.
    public func prunedParameterCount(_ pruning: Pruning) throws -> Int {
        try validate(pruning)
        let kept: (CheckedSize) throws -> CheckedSize
        switch pruning {
        case .structured: return try pruned(pruning).parameterCount
        case .semiStructured(let zeros, let group): kept = { CheckedSize($0.value - (try $0 * zeros).value / group) }
        case .unstructured(let s): kept = { CheckedSize($0.value - Int(Double($0.value) * s)) }
        }
        return try CheckedSize.named("the pruned model's parameters") {
            var linears = CheckedSize(0)
            for layer in layers {
                for shape in try linearShapes(layer) { linears = try linears + kept(try shape.inputs * shape.outputs) }
            }
            return try linears + (tiedEmbeddings ? 1 : 2) * CheckedSize(vocab) * hidden + (2 * layers.count + 1) * CheckedSize(hidden)
        }
    }

    /// A layer's seven linears as (inputs, outputs), q k v o gate up down.
    /// A layer's seven linears as (inputs, outputs), q k v o gate up down.
    func linearShapes(_ layer: Layer) throws -> [(inputs: CheckedSize, outputs: CheckedSize)] {
        let q = try CheckedSize(layer.heads) * headDim, kv = try CheckedSize(layer.kvHeads) * headDim
        let c = CheckedSize(hidden), i = CheckedSize(layer.intermediate)
        return [(c, q), (c, kv), (c, kv), (q, c), (c, i), (c, i), (i, c)]
    }

    private func validate(_ pruning: Pruning) throws {
        switch pruning {
        case .structured(let r, _), .unstructured(let r):
            guard r >= 0, r < 1 else { throw PruningError.ratioOutOfRange(r) }
        case .semiStructured(let zeros, let group):
            guard zeros >= 0, group > 0, zeros < group else { throw PruningError.badGroup(zeros: zeros, group: group) }
        }
    }
}
