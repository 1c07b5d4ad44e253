import CKernels
import Foundation

/// Rotary position embeddings in Hugging Face's rotate-half layout: dimension i pairs with
/// i + D/2. inv_freq and the angles are computed in fp32 as transformers does, so long positions
/// round the same way; `linear` and `llama3` scalings reshape inv_freq as transformers'
/// `_compute_*_rope_parameters` do.
public struct RotaryEmbedding: Sendable {
    public let headDim: Int
    public let inverseFrequencies: [Float]

    public init(headDim: Int, theta: Double, scaling: ModelConfig.RopeScaling?) {
        self.headDim = headDim
        let half = headDim / 2
        // 1 / theta^(2j/D) with the exponent in fp32, as torch computes arange(0, D, 2).float() / D.
        var inv = (0..<half).map { j -> Float in
            Float(1.0 / pow(theta, Double(Float(2 * j) / Float(headDim))))
        }
        switch scaling {
        case .none: break
        case .linear(let factor):
            inv = inv.map { $0 / Float(factor) }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Double(original) / low
            let highWavelength = Double(original) / high
            inv = inv.map { f in
                let wavelength = 2 * Double.pi / Double(f)
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / Float(factor) }
                let smooth = Float((Double(original) / wavelength - low) / (high - low))
                return (1 - smooth) * f / Float(factor) + smooth * f
            }
        case .divisors(let divisors):
            precondition(divisors.count == half, "one rope divisor per frequency")
            inv = zip(inv, divisors).map { $0 / $1 }
        }
        inverseFrequencies = inv
    }

    /// Fills cos and sin (each D/2) for `position`.
    @inline(__always)
    public func angles(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for j in 0..<inverseFrequencies.count {
            let angle = p * inverseFrequencies[j]
            cos[j] = Foundation.cos(angle)
            sin[j] = Foundation.sin(angle)
        }
    }

    /// Fills `table` (T, D): row t holds cos | sin for position `position + t`. Computed once per
    /// chunk and shared by q and k of every layer.
    public func fillTable(_ table: UnsafeMutablePointer<Float>, tokens: Int, position: Int) {
        let half = headDim / 2
        for t in 0..<tokens { angles(position: position + t, cos: table + t * headDim, sin: table + t * headDim + half) }
    }

    /// Rotates `heads` heads of each of `tokens` rows in place, with angles from `fillTable`.
    /// Shapes: x (T, heads·D) with rows `rowStride` apart; table (T, D).
    public func apply(_ x: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, rowStride: Int,
                      table: UnsafePointer<Float>) {
        Parallel.ranges(tokens, costPerItem: heads * headDim) { range in
            lk_rope(x, rowStride, heads, headDim, table, range.lowerBound, range.upperBound)
        }
    }

    /// Backward of `apply`: the rotation's transpose, i.e. the rotation by the opposite angle.
    /// Shapes: dx (T, heads·D) with rows `rowStride` apart; table (T, D) as for the forward.
    public func applyBackward(_ dx: UnsafeMutablePointer<Float>, tokens: Int, heads: Int, rowStride: Int,
                              table: UnsafePointer<Float>) {
        let half = headDim / 2
        Parallel.ranges(tokens, costPerItem: heads * headDim) { range in
            for t in range {
                let cos = table + t * headDim, sin = cos + half
                for h in 0..<heads {
                    let v = dx + t * rowStride + h * headDim
                    for j in 0..<half {
                        let a = v[j], b = v[j + half]
                        v[j] = a * cos[j] + b * sin[j]
                        v[j + half] = b * cos[j] - a * sin[j]
                    }
                }
            }
        }
    }
}

extension RotaryEmbedding {
    /// The rope of `config`'s layers (its global layers' when the sliding ones have their own).
    init(config: ModelConfig) {
        self.init(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
    }

    /// The sliding layers' own rope (Gemma 3), nil when every layer shares `init(config:)`'s.
    static func local(_ config: ModelConfig) -> RotaryEmbedding? {
        config.localRope.map { RotaryEmbedding(headDim: config.headDim, theta: $0.theta, scaling: $0.scaling) }
    }
}
