/// A linear's bias (Qwen2's q, k and v), added to each output row, and its backward: the bias's
/// gradient is the sum of the output gradient's rows; the input gradient is untouched.
/// Shapes: out, dy (T, N); bias, gradient (N).
enum Bias {
    static func forward(_ out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, cols: Int) {
        Parallel.ranges(rows, costPerItem: cols) { range in
            for t in range {
                let row = out + t * cols
                for i in 0..<cols { row[i] += bias[i] }
            }
        }
    }

    /// gradient += Σ_t dy[t]; split by columns, so each sum runs over the rows in one order on any thread count.
    static func backward(dy: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.ranges(cols, costPerItem: rows) { columns in
            for t in 0..<rows {
                let row = dy + t * cols
                for i in columns { gradient[i] += row[i] }
            }
        }
    }
}
