import Foundation

/// How far a model (a LoRAM carrier) is from a reference (its original) on the same token
/// sequences: the mean next-token loss of each, and the mean KL(reference ‖ other) of their
/// next-token distributions, per predicted token, in nats. Positions are those perplexity counts
/// (position t predicts label t+1; labels -100 do not count), so `referenceLoss` and `otherLoss`
/// equal `Perplexity.evaluate` of each model on the same sequences.
public enum ModelComparison {
    public struct Result: Equatable, Sendable {
        public var referenceLoss: Double
        public var otherLoss: Double
        /// Mean over counted positions of Σ_v p(v)·(log p(v) − log q(v)), p the reference's softmax.
        public var klPerToken: Double
        /// Share of counted positions where both models' most likely next token is the same.
        public var top1Agreement: Double
        public var tokens: Int
        public var referencePerplexity: Double { exp(referenceLoss) }
        public var otherPerplexity: Double { exp(otherLoss) }
        /// other / reference perplexity (exp of the loss difference).
        public var perplexityRatio: Double { exp(otherLoss - referenceLoss) }
    }

    /// Both sessions must hold at least as many logits rows as the longest sequence
    /// (`logitsRows`), and share the vocabulary.
    public static func compare(reference: InferenceSession, other: InferenceSession, sequences: [Dataset.Example],
                               checkpoint: () throws -> Void = {}) throws -> Result {
        let vocab = reference.model.config.vocabSize
        precondition(other.model.config.vocabSize == vocab, "the two models must share the vocabulary")
        var lossP = 0.0, lossQ = 0.0, kl = 0.0
        var agree = 0, count = 0
        var logP = [Double](repeating: 0, count: vocab)
        for sequence in sequences where sequence.ids.count >= 2 {
            precondition(sequence.ids.count <= reference.logitsRows && sequence.ids.count <= other.logitsRows,
                         "sessions hold fewer logits rows than the sequence has tokens")
            try checkpoint()
            reference.reset()
            other.reset()
            try reference.forward(sequence.ids, logits: .all(reference.logits), checkpoint: checkpoint)
            try other.forward(sequence.ids, logits: .all(other.logits), checkpoint: checkpoint)
            for t in 0..<(sequence.ids.count - 1) {
                let label = sequence.labels[t + 1]
                guard label != Dataset.ignoreIndex else { continue }
                let p = reference.logits + t * vocab, q = other.logits + t * vocab
                let normP = logSumExp(p, count: vocab), normQ = logSumExp(q, count: vocab)
                var sum = 0.0
                var bestP = 0, bestQ = 0
                for v in 0..<vocab {
                    logP[v] = Double(p[v]) - normP
                    if p[v] > p[bestP] { bestP = v }
                    if q[v] > q[bestQ] { bestQ = v }
                }
                for v in 0..<vocab {
                    let lp = logP[v]
                    sum += exp(lp) * (lp - (Double(q[v]) - normQ))
                }
                kl += max(0, sum)
                lossP -= Double(p[label]) - normP
                lossQ -= Double(q[label]) - normQ
                if bestP == bestQ { agree += 1 }
                count += 1
            }
        }
        let n = Double(max(count, 1))
        return Result(referenceLoss: count > 0 ? lossP / n : .nan, otherLoss: count > 0 ? lossQ / n : .nan,
                      klPerToken: count > 0 ? kl / n : .nan, top1Agreement: count > 0 ? Double(agree) / n : .nan, tokens: count)
    }

    /// log Σ exp(row), in double.
    static func logSumExp(_ row: UnsafePointer<Float>, count: Int) -> Double {
        var maxValue = -Float.infinity
        for i in 0..<count where row[i] > maxValue { maxValue = row[i] }
        var sum = 0.0
        for i in 0..<count { sum += exp(Double(row[i] - maxValue)) }
        return log(sum) + Double(maxValue)
    }
}
