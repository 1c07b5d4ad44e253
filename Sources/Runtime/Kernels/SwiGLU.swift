import Foundation

/// LLaMA's MLP gate: out = silu(gate) · up, elementwise, with silu(x) = x · sigmoid(x).
/// Shapes: gate, up, out (T, I); `out` may alias `gate`.
public enum SwiGLU {
    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count {
            let g = gate[i]
            out[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}
