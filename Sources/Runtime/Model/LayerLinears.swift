import MemoryPlanner

/// The seven linears of a decoder layer, as a loaded model (`DecoderModel.DecoderLayer`) and a
/// step's weights (`StepWeights.Layer`) both hold them.
public protocol LayerLinears {
    var q: Weight { get }
    var k: Weight { get }
    var v: Weight { get }
    var o: Weight { get }
    var gate: Weight { get }
    var up: Weight { get }
    var down: Weight { get }
}

extension LayerLinears {
    /// The linear a per-layer LoRA target sits on.
    public func weight(_ target: LoRATarget) -> Weight {
        switch target {
        case .q: return q
        case .k: return k
        case .v: return v
        case .o: return o
        case .gate: return gate
        case .up: return up
        case .down: return down
        case .lmHead: preconditionFailure("lm_head is not a decoder-layer linear")
        }
    }
}
