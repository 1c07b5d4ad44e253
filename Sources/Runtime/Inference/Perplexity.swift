import Foundation

/// Mean cross-entropy of a model over labelled sequences, and its exponential. Position t's logits
/// predict label t+1; positions labelled -100 do not count. Token-weighted over all sequences.
public enum Perplexity {
    public struct Result: Equatable, Sendable {
        public var loss: Double
        public var tokens: Int
        public var perplexity: Double { exp(loss) }
    }

    public static func evaluate(_ session: InferenceSession, sequences: [Dataset.Example],
                                checkpoint: () throws -> Void = {}) throws -> Result {
        let vocab = session.model.config.vocabSize
        // A session planned for perplexity holds a chunk of logits rows in its arena; otherwise borrow a buffer.
        let owned = session.logitsRows >= session.chunkSize ? nil : UnsafeMutablePointer<Float>.allocate(capacity: session.chunkSize * vocab)
        defer { owned?.deallocate() }
        let logits = owned ?? session.logits
        var total = 0.0
        var count = 0
        for sequence in sequences where sequence.ids.count >= 2 {
            try checkpoint()
            session.reset()
            try session.forward(sequence.ids, logits: .eachChunk(logits, { first, rows in
                for r in 0..<rows {
                    let t = first + r
                    guard t + 1 < sequence.labels.count else { continue }
                    let label = sequence.labels[t + 1]
                    guard label != Dataset.ignoreIndex else { continue }
                    total += crossEntropy(logits + r * vocab, count: vocab, label: label)
                    count += 1
                }
            }), checkpoint: checkpoint)
        }
        return Result(loss: count > 0 ? total / Double(count) : .nan, tokens: count)
    }

    /// -log softmax(row)[label], in double for the sum.
    static func crossEntropy(_ row: UnsafePointer<Float>, count: Int, label: Int) -> Double {
        var maxValue = -Float.infinity
        for i in 0..<count where row[i] > maxValue { maxValue = row[i] }
        var sum = 0.0
        for i in 0..<count { sum += exp(Double(row[i] - maxValue)) }
        return log(sum) + Double(maxValue) - Double(row[label])
    }
}
