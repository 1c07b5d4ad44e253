import CKernels
import Foundation

/// LLaMA's MLP gate: out = silu(gate) · up, elementwise, with silu(x) = x · sigmoid(x).
/// Shapes: gate, up, out (T, I); `out` may alias `gate`.
public enum SwiGLU {
    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 4) { range in
            lk_swiglu(gate, up, out, range.lowerBound, range.upperBound)
        }
    }
}

extension SwiGLU {
    /// Backward of out = silu(gate)·up: dgate = dout·up·silu'(gate), dup = dout·silu(gate), with
    /// silu'(g) = σ(g)·(1 + g·(1 − σ(g))). Writes dgate over `dgate` and dup over `dup`.
    /// Shapes: all (T, I).
    public static func backward(dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 6) { range in
            lk_swiglu_backward(dout, gate, up, dgate, dup, range.lowerBound, range.upperBound)
        }
    }
}
