import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Structured pruning of real weights: kept counts from the planner's rules, the forward of the
/// carrier against the original with the pruned structures silenced (paper §8 item 8a), and the
/// three importance criteria.
final class PruningStructuredTests: XCTestCase {
    func testKeptCountsAreThePlannersForTinyGQAAndMHA() throws {
        let tiny = try DecoderModel.load(directory: Fixtures.tinyModel)
        for model in [tiny, PruningFixtures.gqaModel(), PruningFixtures.mhaModel()] {
            for ratio in [0.3, 0.5, 0.85] {
                let pruned = try StructuredPruner.prune(model, ratio: ratio, importance: .l2)
                let planned = try model.config.modelShape.structurallyPruned(ratio: ratio)
                XCTAssertEqual(pruned.config.modelShape, planned, "ratio \(ratio)")
                XCTAssertEqual(pruned.parameterCount, try planned.parameterCount, "ratio \(ratio)")
                XCTAssertNoThrow(try pruned.pruning!.validate(against: pruned.config))
                for (l, layer) in pruned.layers.enumerated() {
                    XCTAssertEqual(layer.q.rows, planned.layers[l].heads * model.config.headDim)
                    XCTAssertEqual(layer.k.rows, planned.layers[l].kvHeads * model.config.headDim)
                    XCTAssertEqual(layer.o.cols, planned.layers[l].heads * model.config.headDim)
                    XCTAssertEqual(layer.down.cols, planned.layers[l].intermediate)
                }
            }
        }
        // Tiny's two layers are both pruned (defaultPrunedLayers); GQA 4/2 at 0.5 keeps one kv group.
        let tinyHalf = try StructuredPruner.prune(tiny, ratio: 0.5, importance: .l2)
        XCTAssertEqual(tinyHalf.config.layers.map(\.kvHeads), [1, 1])
        XCTAssertEqual(tinyHalf.config.layers.map(\.heads), [2, 2])
        XCTAssertEqual(tinyHalf.config.layers.map(\.intermediate), [88, 88])
    }

    func testRatiosTheShapeRulesRefuseThrowTheirError() {
        let mha = PruningFixtures.mhaModel()
        XCTAssertThrowsError(try StructuredPruner.prune(mha, ratio: 0.95, importance: .l2)) {
            XCTAssertEqual($0 as? PruningError, .nothingKept(layer: 1, what: "kv heads", ratio: 0.95))
        }
        XCTAssertThrowsError(try StructuredPruner.prune(mha, ratio: 1, importance: .l2)) { XCTAssertEqual($0 as? PruningError, .ratioOutOfRange(1)) }
        XCTAssertThrowsError(try StructuredPruner.prune(mha, ratio: 0.5, layers: 3..<7, importance: .l2)) {
            XCTAssertEqual($0 as? PruningError, .layersOutOfRange(3..<7, layerCount: 5))
        }
    }

    /// Removing a head is the same as zeroing its o_proj columns (its output reaches nothing
    /// else); removing a kv group removes its q heads, whose o columns are zeroed; removing a
    /// neuron is zeroing its down_proj column. Zeroing the q/k/v rows instead would not do: zero
    /// scores still give a uniform softmax, so the head would still add the mean of v.
    func testPrunedForwardEqualsOriginalWithPrunedStructuresZeroed() throws {
        // Every family: Qwen2's q/k/v biases go with their heads, Qwen3's and Gemma's per-head
        // norms stay whole, Gemma's output norms see the same block output.
        for (name, model) in [("gqa", PruningFixtures.gqaModel()), ("mha", PruningFixtures.mhaModel()),
                              ("tiny", try DecoderModel.load(directory: Fixtures.tinyModel))] + (try PruningFixtures.familyModels()) {
            let pruned = try StructuredPruner.prune(model, ratio: 0.5, importance: .random(seed: 11))
            let manifest = try XCTUnwrap(pruned.pruning)
            let d = model.config.headDim
            var silenced = model
            for (l, kept) in manifest.kept.enumerated() {
                guard let kept else { continue }
                silenced = PruningFixtures.replacing(silenced, layer: l, .o) { values, rows, cols in
                    for h in 0..<(cols / d) where !kept.qHeads.contains(h) {
                        for r in 0..<rows { for c in (h * d)..<(h * d + d) { values[r * cols + c] = 0 } }
                    }
                }
                silenced = PruningFixtures.replacing(silenced, layer: l, .down) { values, rows, cols in
                    for n in 0..<cols where !kept.neurons.contains(n) { for r in 0..<rows { values[r * cols + n] = 0 } }
                }
            }
            let expected = try PruningFixtures.logits(silenced), actual = try PruningFixtures.logits(pruned)
            let difference = maxAbsDifference(expected, actual)
            XCTAssertLessThanOrEqual(difference, 1e-5, name)
            // The pruning changed the output: the comparison above is not of two identical models.
            XCTAssertGreaterThan(maxAbsDifference(try PruningFixtures.logits(model), actual), 1e-3, name)
            print("\(name): carrier vs silenced original, max |d| = \(difference)")
        }
    }

    func testSlicingKeepsTheOriginalDType() throws {
        let model = PruningFixtures.gqaModel(dtype: .bf16)
        let pruned = try StructuredPruner.prune(model, ratio: 0.5, importance: .l2)
        let kept = try XCTUnwrap(pruned.pruning?.kept[1])
        XCTAssertEqual(pruned.layers[1].q.dtype, .bf16)
        let original = model.layers[1].gate.toArray(), cut = pruned.layers[1].gate.toArray(), c = 64
        for (i, n) in kept.neurons.enumerated() { XCTAssertEqual(Array(cut[(i * c)..<(i * c + c)]), Array(original[(n * c)..<(n * c + c)])) }
    }

    func testRandomPruningIsReproducibleBySeed() throws {
        let model = PruningFixtures.gqaModel()
        let a = try StructuredPruner.prune(model, ratio: 0.5, importance: .random(seed: 5)).pruning
        let b = try StructuredPruner.prune(model, ratio: 0.5, importance: .random(seed: 5)).pruning
        let c = try StructuredPruner.prune(model, ratio: 0.5, importance: .random(seed: 6)).pruning
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a?.kept, c?.kept)
        XCTAssertEqual(a?.seed, 5)
        XCTAssertEqual(a?.method, .random)
        XCTAssertEqual(a?.layers, [1, 4])
    }

    /// l2 keeps the groups built to be largest: in GQA it looks at k_proj only, in MHA at the
    /// sum over q, k, v rows and o columns.
    func testL2KeepsTheLargestGroups() throws {
        var gqa = PruningFixtures.gqaModel()
        let d = 8
        // Layer 2: kv heads 1 and 3 get big k rows; neurons with even index get big gate rows.
        gqa = PruningFixtures.replacing(gqa, layer: 2, .k) { values, _, cols in
            for h in [1, 3] { for i in (h * d * cols)..<((h + 1) * d * cols) { values[i] *= 10 } }
        }
        // A big v head 0 must not matter: GQA decides on k_proj.
        gqa = PruningFixtures.replacing(gqa, layer: 2, .v) { values, _, cols in
            for i in 0..<(d * cols) { values[i] *= 100 }
        }
        gqa = PruningFixtures.replacing(gqa, layer: 2, .gate) { values, rows, cols in
            for n in stride(from: 0, to: rows, by: 2) { for c in 0..<cols { values[n * cols + c] *= 10 } }
        }
        let kept = try XCTUnwrap(StructuredPruner.prune(gqa, ratio: 0.5, importance: .l2).pruning?.kept[2])
        XCTAssertEqual(kept.kvHeads, [1, 3])
        XCTAssertEqual(kept.qHeads, [2, 3, 6, 7])
        XCTAssertEqual(kept.neurons, Array(stride(from: 0, to: 96, by: 2)))

        // MHA: o_proj columns of heads 2 and 5 large enough to dominate the group sums.
        let mha = PruningFixtures.replacing(PruningFixtures.mhaModel(), layer: 1, .o) { values, rows, cols in
            for h in [2, 5] { for r in 0..<rows { for c in (h * d)..<(h * d + d) { values[r * cols + c] *= 10 } } }
        }
        // 0.75 keeps int(8 · 0.25) = 2 heads.
        XCTAssertEqual(try StructuredPruner.prune(mha, ratio: 0.75, importance: .l2).pruning?.kept[1]?.qHeads, [2, 5])
    }

    /// Taylor importance needs the full backward of each family (biases, per-head and output norms).
    func testTaylorPrunesEveryFamily() throws {
        for (name, model) in try PruningFixtures.familyModels() {
            let calibration = try TaylorCalibration(model: model, examples: PruningFixtures.examples(count: 2, length: 16, vocab: 200), seqLen: 16)
            XCTAssertTrue(calibration.loss.isFinite, name)
            let taylor = try StructuredPruner.prune(model, ratio: 0.5, importance: .taylor(calibration))
            XCTAssertNoThrow(try taylor.pruning!.validate(against: taylor.config), name)
            XCTAssertEqual(taylor.config.family, model.config.family, name)
            // The carrier saves and loads back as its family, per-layer widths and manifest with it.
            let directory = try temporaryDirectory(name)
            try taylor.save(to: directory)
            let loaded = try DecoderModel.load(directory: directory)
            XCTAssertEqual(loaded.config, taylor.config, name)
            XCTAssertEqual(maxAbsDifference(try PruningFixtures.logits(loaded), try PruningFixtures.logits(taylor)), 0, name)
        }
    }

    func testTaylorRunsOnACalibrationSetAndDiffersFromL2() throws {
        let model = PruningFixtures.gqaModel()
        let calibration = try TaylorCalibration(model: model, examples: PruningFixtures.examples(count: 4, length: 16), seqLen: 16)
        XCTAssertTrue(calibration.loss.isFinite)
        XCTAssertEqual(calibration.tokens, 4 * 15)
        let taylor = try StructuredPruner.prune(model, ratio: 0.5, importance: .taylor(calibration))
        let l2 = try StructuredPruner.prune(model, ratio: 0.5, importance: .l2)
        XCTAssertEqual(taylor.pruning?.method, .taylor)
        XCTAssertEqual(taylor.config.layers, l2.config.layers)
        XCTAssertNotEqual(taylor.pruning?.kept, l2.pruning?.kept)
        XCTAssertNoThrow(try taylor.pruning!.validate(against: taylor.config))
    }

    /// A group whose weights are all zero has zero Taylor salience and is pruned first.
    func testTaylorPrunesAGroupWithZeroWeights() throws {
        let d = 8
        let model = PruningFixtures.replacing(PruningFixtures.gqaModel(), layer: 1, .k) { values, _, cols in
            for i in (2 * d * cols)..<(3 * d * cols) { values[i] = 0 }
        }
        let calibration = try TaylorCalibration(model: model, examples: PruningFixtures.examples(count: 2, length: 12), seqLen: 12)
        // 0.3 keeps 4 − int(1.2) = 3 of 4 kv groups: the one dropped is the zero one.
        let kept = try XCTUnwrap(StructuredPruner.prune(model, ratio: 0.3, importance: .taylor(calibration)).pruning?.kept[1])
        XCTAssertEqual(kept.kvHeads, [0, 1, 3])
    }
}

extension PruningStructuredTests {
    /// The calibration holds what MemoryPlanner's ImportancePlan (memory/plan's "prune" phase) says:
    /// a gradient for every decoder linear and no other, beside an fp32 copy of every weight.
    func testTaylorCalibrationHoldsWhatThePruningPhaseIsPlannedFor() throws {
        let model = PruningFixtures.gqaModel()
        let calibration = try TaylorCalibration(model: model, examples: PruningFixtures.examples(count: 2, length: 16), seqLen: 16)
        let plan = try TaylorCalibration.plan(config: model.config, seqLen: 16)
        XCTAssertEqual(calibration.gradients.byteCount, plan.breakdown[.gradient])
        XCTAssertEqual(calibration.gradients.parameterCount, try ImportancePlan.scoredParameters(model.config.modelShape))
        XCTAssertEqual(plan.breakdown[.weight], model.parameterCount * 4)
        XCTAssertEqual(try TaylorCalibration.plannedBytes(config: model.config, seqLen: 16), plan.peakBytes)
        XCTAssertTrue(calibration.loss.isFinite)
    }
}
