import Foundation

/// Gemma's MLP gate: out = gelu(gate) · up with the tanh approximation transformers calls
/// gelu_pytorch_tanh: gelu(x) = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), and its backward.
/// Shapes: gate, up, out (T, I); `out` may alias `gate`.
enum GeGLU {
    static let c = Float((2 / Double.pi).squareRoot()), k: Float = 0.044715

    static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 12) { range in
            for i in range {
                let x = gate[i]
                out[i] = 0.5 * x * (1 + tanh(c * (x + k * x * x * x))) * up[i]
            }
        }
    }

    /// dgate = dout·up·gelu'(gate), dup = dout·gelu(gate), with
    /// gelu'(x) = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²). Writes over dgate and dup.
    static func backward(dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                         dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 16) { range in
            for i in range {
                let x = gate[i], th = tanh(c * (x + k * x * x * x))
                let gelu = 0.5 * x * (1 + th)
                let derivative = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * c * (1 + 3 * k * x * x)
                dgate[i] = dout[i] * up[i] * derivative
                dup[i] = dout[i] * gelu
            }
        }
    }
}
