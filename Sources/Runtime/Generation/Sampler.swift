import Foundation
import MemoryPlanner

/// Picks the next token from logits: greedy at temperature 0, otherwise softmax(logits / T)
/// restricted by top-k then top-p (transformers' order), drawn from a seeded generator so a
/// run is reproducible. Buffers are allocated once for the vocabulary.
public final class Sampler {
    public struct Settings: Equatable, Sendable {
        public var temperature: Double = 0
        public var topK: Int? = nil
        public var topP: Double? = nil
        public var seed: UInt64 = 0
        public init(temperature: Double = 0, topK: Int? = nil, topP: Double? = nil, seed: UInt64 = 0) {
            self.temperature = temperature
            self.topK = topK
            self.topP = topP
            self.seed = seed
        }
    }

    public let settings: Settings
    private var random: Xoshiro256StarStar
    private var order: [Int32]
    private var probabilities: [Float]

    public init(vocabSize: Int, settings: Settings) {
        self.settings = settings
        random = Xoshiro256StarStar(seed: settings.seed)
        // Greedy decoding needs no buffers; sampling sorts and weighs the whole vocabulary.
        let sampling = settings.temperature > 0
        order = sampling ? [Int32](repeating: 0, count: vocabSize) : []
        probabilities = sampling ? [Float](repeating: 0, count: vocabSize) : []
    }

    public func next(_ logits: UnsafePointer<Float>, count: Int) -> Int {
        if settings.temperature <= 0 { return Self.argmax(logits, count: count) }
        let inverseTemperature = Float(1 / settings.temperature)
        // Candidates sorted by logit, best first (ties keep the lower id, as a stable sort does).
        for i in 0..<count { order[i] = Int32(i) }
        order.withUnsafeMutableBufferPointer { buffer in
            buffer[0..<count].sort { logits[Int($0)] > logits[Int($1)] || (logits[Int($0)] == logits[Int($1)] && $0 < $1) }
        }
        var kept = min(count, settings.topK.map { max(1, $0) } ?? count)
        let top = logits[Int(order[0])] * inverseTemperature
        var sum: Float = 0
        for r in 0..<kept {
            let p = expf(logits[Int(order[r])] * inverseTemperature - top)
            probabilities[r] = p
            sum += p
        }
        if let topP = settings.topP, topP < 1 {
            // Keep the smallest prefix whose mass reaches topP (at least one token).
            var cumulative: Float = 0
            for r in 0..<kept {
                cumulative += probabilities[r] / sum
                if cumulative >= Float(topP) { kept = r + 1; break }
            }
            sum = probabilities[0..<kept].reduce(0, +)
        }
        var target = Float(random.nextUnitDouble()) * sum
        for r in 0..<kept {
            target -= probabilities[r]
            if target < 0 { return Int(order[r]) }
        }
        return Int(order[kept - 1])
    }

    /// The first index of the largest value, as torch.argmax returns it.
    public static func argmax(_ values: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for i in 1..<count where values[i] > values[best] { best = i }
        return best
    }
}
