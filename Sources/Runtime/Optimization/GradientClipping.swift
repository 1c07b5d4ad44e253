import Foundation

/// Global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ (norm type 2): the total norm
/// is the 2-norm of the per-tensor 2-norms; every gradient is scaled by
/// max_norm / (total + 1e-6) when that coefficient is below 1.
///
/// torch sums squares in fp32 (its result drifts by a few ulps at 1,000 elements and by ~10⁻⁵
/// relative at a million); here each tensor's sum is accumulated in Double and its norm rounded
/// to Float, so the norm is the correctly rounded one up to the last step. The coefficient and the
/// scaling are fp32 as in torch. Compared with torch in Tests/RuntimeTests/OptimizationClippingTests.swift.
public enum GradientClipping {
    /// The 2-norm over all of `gradients` seen as one vector (per-tensor norms first, as torch).
    public static func totalNorm(_ gradients: [UnsafeBufferPointer<Float>]) -> Float {
        var sum = 0.0
        for gradient in gradients {
            let norm = Double(Float(squaredSum(gradient).squareRoot()))
            sum += norm * norm
        }
        return Float(sum.squareRoot())
    }

    /// Scales `gradients` in place so their total norm is at most `maxNorm`; returns the total norm
    /// before clipping (log it as the step's `gradNorm`). A non-finite total scales nothing
    /// (torch would turn every gradient into NaN); the caller sees it and decides.
    @discardableResult
    public static func clip(_ gradients: [UnsafeMutableBufferPointer<Float>], maxNorm: Double) -> Float {
        let total = totalNorm(gradients.map { UnsafeBufferPointer($0) })
        let coefficient = Float(maxNorm) / (total + Float(1e-6))
        guard total.isFinite, coefficient < 1 else { return total }
        for gradient in gradients {
            for i in gradient.indices { gradient[i] *= coefficient }
        }
        return total
    }

    /// Σ x², in Double with independent partial sums (deterministic: the same order every call).
    private static func squaredSum(_ values: UnsafeBufferPointer<Float>) -> Double {
        var partial = (0.0, 0.0, 0.0, 0.0)
        var i = 0
        let n = values.count
        while i + 4 <= n {
            let a = Double(values[i]), b = Double(values[i + 1]), c = Double(values[i + 2]), d = Double(values[i + 3])
            partial.0 += a * a
            partial.1 += b * b
            partial.2 += c * c
            partial.3 += d * d
            i += 4
        }
        while i < n {
            let a = Double(values[i])
            partial.0 += a * a
            i += 1
        }
        return (partial.0 + partial.1) + (partial.2 + partial.3)
    }
}
