import Foundation
import MemoryPlanner

/// Runtime's view of a LoRA target (the enum itself lives in MemoryPlanner, which plans adapters
/// without weights): PEFT's module paths.
extension LoRATarget {
    /// PEFT's module path inside a decoder of any family loramd runs (without `base_model.model.`).
    public func modulePath(layer: Int) -> String {
        switch self {
        case .q, .k, .v, .o: return "model.layers.\(layer).self_attn.\(rawValue)"
        case .gate, .up, .down: return "model.layers.\(layer).mlp.\(rawValue)"
        case .lmHead: return "lm_head"
        }
    }
}

/// One LoRA pair on a linear W [out, in]: A [r, in] and B [out, r], fp32, so that
/// y = x·Wᵀ + scaling · (x·Aᵀ)·Bᵀ.
public final class LoRAPair: @unchecked Sendable {
    public let a: Weight
    public let b: Weight

    public init(rank: Int, inFeatures: Int, outFeatures: Int) {
        a = Weight(rows: rank, cols: inFeatures)
        b = Weight(rows: outFeatures, cols: rank)
    }

    public var parameterCount: Int { a.elementCount + b.elementCount }
}

/// A LoRA adapter for one model shape: rank, alpha, dropout and targets as PEFT's LoraConfig has
/// them, and a pair per targeted linear. Scaling is alpha / r (rsLoRA off, as PEFT's default).
public final class LoRAAdapter: @unchecked Sendable {
    public let rank: Int
    public let alpha: Double
    public let dropout: Double
    public let targets: Set<LoRATarget>
    /// Per decoder layer, the pairs of its targeted linears.
    public let layers: [[LoRATarget: LoRAPair]]
    public let lmHead: LoRAPair?
    /// Inference reads and the optimizer writes the pairs under this lock.
    public let access = ReadWriteLock()

    public var scaling: Float { Float(alpha / Double(rank)) }

    /// Zero-filled pairs shaped for `config` (per-layer widths included, so pruned models work).
    public init(config: ModelConfig, rank: Int, alpha: Double, dropout: Double = 0, targets: Set<LoRATarget>) {
        precondition(rank > 0)
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.targets = targets
        let c = config.hiddenSize, d = config.headDim
        layers = config.layers.map { shape in
            var pairs: [LoRATarget: LoRAPair] = [:]
            for target in LoRATarget.layerTargets where targets.contains(target) {
                let (out, inFeatures) = Self.shape(of: target, layer: shape, hidden: c, headDim: d, vocab: config.vocabSize)
                pairs[target] = LoRAPair(rank: rank, inFeatures: inFeatures, outFeatures: out)
            }
            return pairs
        }
        lmHead = targets.contains(.lmHead) ? LoRAPair(rank: rank, inFeatures: c, outFeatures: config.vocabSize) : nil
    }

    /// (out, in) of a target's base linear.
    public static func shape(of target: LoRATarget, layer: ModelShape.Layer, hidden c: Int, headDim d: Int, vocab: Int) -> (Int, Int) {
        switch target {
        case .q: return (layer.heads * d, c)
        case .k, .v: return (layer.kvHeads * d, c)
        case .o: return (c, layer.heads * d)
        case .gate, .up: return (layer.intermediate, c)
        case .down: return (c, layer.intermediate)
        case .lmHead: return (vocab, c)
        }
    }

    /// The pair on `target` of `layer` (nil when not targeted).
    public func pair(_ target: LoRATarget, layer: Int) -> LoRAPair? {
        target == .lmHead ? lmHead : layers[layer][target]
    }

    /// Every pair with its PEFT module path, in a stable order.
    public var namedPairs: [(path: String, pair: LoRAPair)] {
        var out: [(String, LoRAPair)] = []
        for (i, pairs) in layers.enumerated() {
            for target in LoRATarget.layerTargets { if let p = pairs[target] { out.append((target.modulePath(layer: i), p)) } }
        }
        if let lmHead { out.append((LoRATarget.lmHead.modulePath(layer: 0), lmHead)) }
        return out
    }

    public var parameterCount: Int { namedPairs.reduce(0) { $0 + $1.pair.parameterCount } }
}
