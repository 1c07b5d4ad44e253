import CKernels

/// Next-token cross-entropy of one row of logits and its gradient, in one pass.
/// Shapes: logits (V).
enum CrossEntropy {
    /// log(Σ exp(x)) − x[target]; with `gradientScale` ≠ 0 the row is overwritten by its
    /// gradient, gradientScale·(softmax(x) − onehot(target)).
    static func row(_ logits: UnsafeMutablePointer<Float>, vocab: Int, target: Int, gradientScale: Float) -> Float {
        lk_cross_entropy_row(logits, vocab, target, gradientScale)
    }
}
