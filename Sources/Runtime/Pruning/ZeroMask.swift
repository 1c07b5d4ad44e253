import Foundation

/// The pruned weights of a semi-structured or unstructured carrier: every weight of a trainable
/// decoder linear that is exactly zero when training starts. Full-parameter training (the paper's
/// alignment, §1.2) would fill them in and undo the pruning, so the job masks their gradients
/// before clipping (they take no part in the norm, and AdamW's moments stay zero) and zeroes the
/// weights again after every optimizer update. One bit per weight.
public final class ZeroMask: @unchecked Sendable {
    struct Tensor {
        let parameter: UnsafeMutablePointer<Float>
        let gradient: UnsafeMutablePointer<Float>
        let count: Int
        /// Bit i set: element i is pruned.
        let bits: [UInt64]
    }

    let tensors: [Tensor]

    /// The zeros of every entry of `gradients` that is a decoder linear (`model.layers.*_proj`).
    public init(_ gradients: GradientBuffers) {
        tensors = gradients.entries.filter { $0.name.hasPrefix("model.layers.") && $0.name.hasSuffix("_proj.weight") }.map { entry in
            var bits = [UInt64](repeating: 0, count: (entry.count + 63) / 64)
            for i in 0..<entry.count where entry.parameter[i] == 0 { bits[i >> 6] |= 1 << UInt64(i & 63) }
            return Tensor(parameter: entry.parameter, gradient: entry.gradient, count: entry.count, bits: bits)
        }
    }

    /// How many weights are held at zero.
    public var maskedCount: Int { tensors.reduce(0) { $0 + $1.bits.reduce(0) { $0 + $1.nonzeroBitCount } } }

    public func maskGradients() { for tensor in tensors { Self.zero(tensor.gradient, tensor.bits) } }

    public func apply() { for tensor in tensors { Self.zero(tensor.parameter, tensor.bits) } }

    private static func zero(_ values: UnsafeMutablePointer<Float>, _ bits: [UInt64]) {
        for (w, word) in bits.enumerated() where word != 0 {
            var remaining = word
            while remaining != 0 {
                values[w << 6 + remaining.trailingZeroBitCount] = 0
                remaining &= remaining - 1
            }
        }
    }
}
