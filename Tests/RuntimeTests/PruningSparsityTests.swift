import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Semi-structured 2:4 and unstructured magnitude pruning, and full-parameter training that
/// keeps their zeros (alignment of a sparse carrier).
final class PruningSparsityTests: XCTestCase {
    func testSemiZeroesTheTwoSmallestOfEveryFour() throws {
        let model = PruningFixtures.gqaModel()
        let pruned = try SparsityPruner.prune(model, method: .semi, ratio: 0.5)
        XCTAssertEqual(pruned.config, model.config)
        XCTAssertEqual(pruned.pruning?.pattern, "2:4")
        var zeros = 0, weights = 0
        for (original, sparse) in zip(model.layers, pruned.layers) {
            for ((_, w), (_, s)) in zip(original.linears, sparse.linears) {
                let before = w.toArray(), after = s.toArray()
                weights += after.count
                for g in stride(from: 0, to: after.count, by: 4) {
                    let group = after[g..<(g + 4)]
                    XCTAssertGreaterThanOrEqual(group.filter { $0 == 0 }.count, 2)
                    zeros += group.filter { $0 == 0 }.count
                    let magnitudes = before[g..<(g + 4)].map(abs).sorted()
                    for i in g..<(g + 4) {
                        if after[i] == 0 { XCTAssertLessThanOrEqual(abs(before[i]), magnitudes[1]) } else { XCTAssertEqual(after[i], before[i]) }
                    }
                }
            }
        }
        XCTAssertEqual(zeros, weights / 2)
        XCTAssertEqual(try model.config.modelShape.prunedParameterCount(.semiStructured(zeros: 2, group: 4)),
                       pruned.parameterCount - zeros)
    }

    func testMagnitudeZeroesExactlyTheCountThePlannerCharges() throws {
        let model = PruningFixtures.gqaModel()
        for ratio in [0.55, 0.3] {
            let pruned = try SparsityPruner.prune(model, method: .magnitude, ratio: ratio)
            var zeros = 0
            for (original, sparse) in zip(model.layers, pruned.layers) {
                for ((name, w), (_, s)) in zip(original.linears, sparse.linears) {
                    let before = w.toArray(), after = s.toArray()
                    let zeroed = after.indices.filter { after[$0] == 0 }
                    XCTAssertEqual(zeroed.count, Int(Double(after.count) * ratio), name)
                    zeros += zeroed.count
                    let largestZeroed = zeroed.map { abs(before[$0]) }.max() ?? 0
                    for i in after.indices where after[i] != 0 {
                        XCTAssertEqual(after[i], before[i])
                        XCTAssertGreaterThanOrEqual(abs(before[i]), largestZeroed)
                    }
                }
            }
            XCTAssertEqual(try model.config.modelShape.prunedParameterCount(.unstructured(sparsity: ratio)), pruned.parameterCount - zeros)
        }
        XCTAssertThrowsError(try SparsityPruner.prune(model, method: .magnitude, ratio: 1.2)) {
            XCTAssertEqual($0 as? PruningError, .ratioOutOfRange(1.2))
        }
    }

    func testMagnitudeTiesAtTheThresholdGoToLowerIndices() {
        var values: [Float] = [0.5, -0.1, 0.1, 0.3, 0.1, -0.2]
        values.withUnsafeMutableBufferPointer { SparsityPruner.zeroSmallest($0, count: 2) }
        XCTAssertEqual(values, [0.5, 0, 0, 0.3, 0.1, -0.2])
    }

    /// Alignment of a 2:4 carrier: with keepZeros the pruned weights stay zero through AdamW
    /// steps while the others move; without it they fill in (so the check can fail).
    func testFullParameterTrainingKeepsZerosWhenAsked() throws {
        let carrier = try SparsityPruner.prune(PruningFixtures.gqaModel(), method: .semi, ratio: 0.5)
        func train(keepZeros: Bool) throws -> DecoderModel {
            var settings = TrainingJob.Settings(seqLen: 12, microBatch: 2, steps: 3, lr: 1e-2)
            settings.frozen = ["lm_head"]
            settings.keepZeros = keepZeros
            settings.weightDecay = 0.1
            let job = try TrainingJob(model: carrier, adapter: nil, examples: PruningFixtures.examples(count: 6, length: 12), settings: settings)
            let linearWeights = carrier.layers.reduce(0) { $0 + $1.linears.reduce(0) { $0 + $1.weight.elementCount } }
            XCTAssertEqual(job.zeroMask?.maskedCount, keepZeros ? linearWeights / 2 : nil)
            for _ in 0..<3 { _ = job.runStep() }
            return job.weights.snapshot()
        }
        for keepZeros in [true, false] {
            let trained = try train(keepZeros: keepZeros)
            var stillZero = 0, zeros = 0, moved = 0
            for (before, after) in zip(carrier.layers, trained.layers) {
                for ((_, w), (_, t)) in zip(before.linears, after.linears) {
                    let b = w.toArray(), a = t.toArray()
                    for i in b.indices {
                        if b[i] == 0 { zeros += 1; if a[i] == 0 { stillZero += 1 } } else if a[i] != b[i] { moved += 1 }
                    }
                }
            }
            XCTAssertGreaterThan(moved, zeros / 2, "keepZeros \(keepZeros): training changed the kept weights")
            if keepZeros { XCTAssertEqual(stillZero, zeros) } else { XCTAssertLessThan(stillZero, zeros / 10) }
            XCTAssertEqual(trained.pruning, carrier.pruning, "the snapshot stays recoverable")
        }
    }
}
