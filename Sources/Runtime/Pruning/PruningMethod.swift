import MemoryPlanner

/// How a LoRAM carrier was cut from its original (paper §1.1): three importance criteria for
/// structured pruning (whole heads and MLP neurons removed, shapes shrink) and two patterns of
/// zeros (shapes stay). The raw values are the RPC's and the manifest's spelling.
public enum PruningMethod: String, Codable, CaseIterable, Sendable {
    /// Structured, seeded uniform scores (LoRAM-Rand).
    case random
    /// Structured, summed squared weights of each group (LLM-Pruner's magnitude importance, p = 2).
    case l2
    /// Structured, first-order Taylor |W ⊙ ∂L/∂W| summed per group over a calibration set (LoRAM-Stru).
    case taylor
    /// Semi-structured 2:4: in every 4 consecutive weights of a row, the 2 smallest |w| are zero (LoRAM-Semi).
    case semi
    /// Unstructured: the `ratio` fraction of smallest |w| of every decoder linear is zero (LoRAM-Unst).
    case magnitude

    public var isStructured: Bool { self == .random || self == .l2 || self == .taylor }

    /// The planner's description of the same pruning, so accounting and real pruning agree.
    public func pruning(ratio: Double, layers: Range<Int>?) -> Pruning {
        switch self {
        case .random, .l2, .taylor: return .structured(ratio: ratio, layers: layers)
        case .semi: return .semiStructured(zeros: SparsityPruner.semiZeros, group: SparsityPruner.semiGroup)
        case .magnitude: return .unstructured(sparsity: ratio)
        }
    }
}
