import Foundation

/// The two code books bitsandbytes quantizes with, rebuilt the way it builds them (float32
/// arithmetic where it uses float32 tensors), so the values are bit-identical to its tables:
/// - `nf4`: NormalFloat-4, 16 quantiles of N(0, 1) scaled to [-1, 1] (`create_normal_map`);
/// - `dynamic8`: the signed dynamic 8-bit map (`create_dynamic_map(signed=True)`), used to
///   double-quantize the NF4 block scales.
public enum QuantizationMaps {
    public static let nf4: [Float] = normalMap()
    public static let dynamic8: [Float] = dynamicMap()

    /// `create_normal_map(offset=0.9677083, use_extra_value=True)`: 8 positive quantiles, 7
    /// negative ones and an exact zero, sorted and divided by the largest.
    static func normalMap(offset: Float = 0.9677083) -> [Float] {
        let positive = linspace(offset, 0.5, 9).dropLast().map { Float(inverseNormalCDF(Double($0))) }
        let negative = linspace(offset, 0.5, 8).dropLast().map { Float(-inverseNormalCDF(Double($0))) }
        let values = (positive + [0] + negative).sorted()
        let largest = values.last!
        return values.map { $0 / largest }
    }

    /// `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`: for each exponent
    /// 10^-6 … 10^0, the midpoints of an evenly spaced grid on [0.1, 1] (2^i of them), both signs;
    /// then 0 and 1. 254 + 2 = 256 values, sorted.
    static func dynamicMap() -> [Float] {
        var data: [Float] = []
        for i in 0..<7 {
            let boundaries = linspace(0.1, 1, (1 << i) + 1)
            let scale = Float([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1][i] as Double)
            for j in 0..<(boundaries.count - 1) {
                let mean = (boundaries[j] + boundaries[j + 1]) / 2
                data.append(scale * mean)
                data.append(-scale * mean)
            }
        }
        data += [0, 1]
        return data.sorted()
    }

    /// `torch.linspace` in float32 on CPU: the first half counts up from `start`, the second half
    /// down from `end`, each a fused multiply-add with the float32 step.
    static func linspace(_ start: Float, _ end: Float, _ steps: Int) -> [Float] {
        guard steps > 1 else { return [start] }
        let step = (end - start) / Float(steps - 1)
        return (0..<steps).map { i in
            i < steps / 2 ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(steps - 1 - i))
        }
    }

    /// Φ⁻¹(p) for 0 < p < 1 to about double precision: Acklam's rational approximation
    /// (relative error 1.2e-9) refined by one Halley step on erfc.
    static func inverseNormalCDF(_ p: Double) -> Double {
        precondition(p > 0 && p < 1)
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                 -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        var x: Double
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - low {
            let q = p - 0.5, r = q * q
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
                (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * log(1 - p)).squareRoot()
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        // Halley: e = Φ(x) - p, u = e·√(2π)·exp(x²/2).
        let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        x -= u / (1 + x * u / 2)
        return x
    }
}
