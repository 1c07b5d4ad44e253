import Foundation
import MemoryPlanner

/// PEFT's LoRA initialisation: A Kaiming-uniform with a = sqrt(5), which for A [r, in] is
/// U(-1/sqrt(in), 1/sqrt(in)), and B zero, so a new adapter leaves the model's output unchanged.
/// Drawn from the project's Xoshiro256StarStar: the same seed gives the same adapter, pair after
/// pair in `namedPairs` order (A, then B when it is drawn too).
extension LoRAAdapter {
    public enum BInitialization: Equatable, Sendable {
        /// PEFT's default.
        case zero
        /// N(0, std): an adapter that changes the output from the start (tests, the golden files).
        case normal(std: Float)
    }

    /// A new adapter on `targets` of a model shaped by `config`, initialised as PEFT does.
    public static func create(config: ModelConfig, rank: Int, alpha: Double, dropout: Double = 0, targets: Set<LoRATarget>,
                              seed: UInt64, b: BInitialization = .zero) -> LoRAAdapter {
        let adapter = LoRAAdapter(config: config, rank: rank, alpha: alpha, dropout: dropout, targets: targets)
        adapter.initialize(seed: seed, b: b)
        return adapter
    }

    /// Overwrites every pair with a fresh draw.
    public func initialize(seed: UInt64, b: BInitialization = .zero) {
        var random = Xoshiro256StarStar(seed: seed)
        for (_, pair) in namedPairs {
            let a = pair.a.float32!, bound = 1 / Float(pair.a.cols).squareRoot()
            for i in 0..<pair.a.elementCount { a[i] = (Float(random.nextUnitDouble()) * 2 - 1) * bound }
            let bValues = pair.b.float32!
            switch b {
            case .zero:
                bValues.update(repeating: 0, count: pair.b.elementCount)
            case .normal(let std):
                for i in 0..<pair.b.elementCount { bValues[i] = std * Self.standardNormal(&random) }
            }
        }
    }

    /// Box-Muller on two uniforms (the first kept away from 0 for the logarithm).
    static func standardNormal(_ random: inout Xoshiro256StarStar) -> Float {
        let u1 = 1 - random.nextUnitDouble(), u2 = random.nextUnitDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
