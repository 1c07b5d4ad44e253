/// RMSNorm as LLaMA defines it: out = x / sqrt(mean(x²) + eps) · w, per row.
/// Shapes: x, out (T, C); weight (C). `out` may alias `x`.
public enum RMSNorm {
    public static func forward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                               rows: Int, cols: Int, eps: Float) {
        for t in 0..<rows {
            let row = x + t * cols
            var sum: Float = 0
            for i in 0..<cols { sum += row[i] * row[i] }
            let scale = 1 / (sum / Float(cols) + eps).squareRoot()
            let o = out + t * cols
            for i in 0..<cols { o[i] = row[i] * scale * weight[i] }
        }
    }
}
