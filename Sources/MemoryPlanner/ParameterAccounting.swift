import Foundation

/// The paper's memory accounting (§3.1): parameter counts before and after pruning, the reduction
/// ratios it prints and its "HBM" column. It counts bf16 parameters only, ignoring LoRA weights,
/// optimizer state, activations and quantization constants; the planner's real peaks come from the
/// step description, not from here. This is what the paper's tables (and a client comparing with
/// them) mean by "LoRAM 2.17×" or "QLoRAM 15.81×".
public struct ParameterAccounting: Equatable, Sendable {
    /// Every parameter of the original model (#orig).
    public var original: Int
    /// Every parameter the training carrier charges (#pruned).
    public var pruned: Int

    public init(original: Int, pruned: Int) {
        self.original = original
        self.pruned = pruned
    }

    /// The accounting for training `shape` under `pruning`.
    public init(_ shape: ModelShape, pruning: Pruning) throws {
        self.init(original: try shape.parameterCount, pruned: try shape.prunedParameterCount(pruning))
    }

    /// A baseline row: LoRA on a smaller model `small` instead of `large` (13B vs 70B: 5.30).
    public init(large: ModelShape, small: ModelShape) throws {
        self.init(original: try large.parameterCount, pruned: try small.parameterCount)
    }

    /// LoRAM reduction, #orig / #pruned.
    public var loramReduction: Double { Double(original) / Double(pruned) }
    /// The paper's QLoRAM parameter column, #pruned / 4: every parameter as if stored in 4 bits.
    public var qloramParameters: Double { Double(pruned) / 4 }
    /// QLoRAM reduction, 4 · #orig / #pruned.
    public var qloramReduction: Double { 4 * Double(original) / Double(pruned) }
    /// HBM of the bf16 carrier, GiB (the paper labels it GB).
    public var loramHBMGiB: Double { Self.hbmGiB(parameters: Double(pruned)) }
    /// HBM of the 4-bit carrier, GiB.
    public var qloramHBMGiB: Double { Self.hbmGiB(parameters: qloramParameters) }
    /// HBM of the original model in bf16, GiB.
    public var originalHBMGiB: Double { Self.hbmGiB(parameters: Double(original)) }

    /// params × 2 bytes / 2^30.
    public static func hbmGiB(parameters: Double) -> Double { parameters * 2 / 1_073_741_824 }
}

extension ModelShape {
    /// Trainable parameters of a rank-`rank` LoRA on `targets`: r·(in + out) per adapted linear
    /// (A is r×in, B is out×r). On a pruned shape the factors follow the pruned widths.
    public func loraParameterCount(rank: Int, targets: Set<LoRATarget> = LoRATarget.decoder) throws -> Int {
        let perLayer: [LoRATarget] = [.q, .k, .v, .o, .gate, .up, .down]
        return try CheckedSize.named("the adapter's parameters") {
            var total = CheckedSize(0)
            for layer in layers {
                for (target, shape) in zip(perLayer, try linearShapes(layer)) where targets.contains(target) {
                    total = try total + rank * (try shape.inputs + shape.outputs)
                }
            }
            if targets.contains(.lmHead) { total = try total + rank * (try CheckedSize(hidden) + vocab) }
            return total
        }
    }
}
