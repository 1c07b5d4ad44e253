import CKernels

/// LLaMA's MLP gate: out = silu(gate) · up, elementwise, with silu(x) = x · sigmoid(x).
/// Shapes: gate, up, out (T, I); `out` may alias `gate`.
public enum SwiGLU {
    public static func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.ranges(count, costPerItem: 4) { range in
            lk_swiglu(gate, up, out, range.lowerBound, range.upperBound)
        }
    }
}
