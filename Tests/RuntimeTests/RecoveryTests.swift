import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Recovery of a carrier's adapter onto the original (paper §8 item 8b–d): ΔW zero on pruned
/// rows and columns and equal to the carrier's on kept ones; a zero-B adapter recovers to an
/// exact no-op; the recovered adapter saves and loads on the original.
final class RecoveryTests: XCTestCase {
    static let allTargets: Set<LoRATarget> = [.q, .k, .v, .o, .gate, .up, .down, .lmHead]

    /// A carrier of `model` and an adapter on it with non-zero B (as if trained).
    func carrierAndAdapter(_ model: DecoderModel, ratio: Double = 0.5, b: LoRAAdapter.BInitialization = .normal(std: 0.2))
        throws -> (DecoderModel, LoRAAdapter) {
        let carrier = try StructuredPruner.prune(model, ratio: ratio, importance: .random(seed: 4))
        let adapter = LoRAAdapter.create(config: carrier.config, rank: 4, alpha: 8, targets: Self.allTargets, seed: 9, b: b)
        return (carrier, adapter)
    }

    func testRecoveredDeltaIsZeroOnPrunedAndTheCarriersOnKept() throws {
        for model in [PruningFixtures.gqaModel(), PruningFixtures.mhaModel()] {
            let (carrier, adapter) = try carrierAndAdapter(model)
            let manifest = try XCTUnwrap(carrier.pruning)
            let recovered = try LoRARecovery.recover(adapter: adapter, manifest: manifest, target: model.config)
            XCTAssertNoThrow(try recovered.checkFits(model))
            let d = model.config.headDim
            for l in 0..<model.config.layerCount {
                for target in LoRATarget.layerTargets {
                    let full = PruningFixtures.delta(recovered.pair(target, layer: l)!)
                    let small = PruningFixtures.delta(adapter.pair(target, layer: l)!)
                    let weight = model.layers[l].weight(target)
                    // Original row/column -> carrier row/column (nil: pruned).
                    var rowMap = Array(0..<weight.rows).map(Optional.some), columnMap = Array(0..<weight.cols).map(Optional.some)
                    if let kept = manifest.kept[l] {
                        func map(_ indices: [Int], width: Int, count: Int) -> [Int?] {
                            var out = [Int?](repeating: nil, count: count)
                            for (i, index) in indices.enumerated() { for w in 0..<width { out[index * width + w] = i * width + w } }
                            return out
                        }
                        switch target {
                        case .q: rowMap = map(kept.qHeads, width: d, count: weight.rows)
                        case .k, .v: rowMap = map(kept.kvHeads, width: d, count: weight.rows)
                        case .gate, .up: rowMap = map(kept.neurons, width: 1, count: weight.rows)
                        case .o: columnMap = map(kept.qHeads, width: d, count: weight.cols)
                        case .down: columnMap = map(kept.neurons, width: 1, count: weight.cols)
                        case .lmHead: break
                        }
                    }
                    let smallCols = columnMap.compactMap { $0 }.count
                    var prunedEntries = 0
                    for i in 0..<weight.rows {
                        for j in 0..<weight.cols {
                            let value = full[i * weight.cols + j]
                            if let si = rowMap[i], let sj = columnMap[j] {
                                XCTAssertEqual(value, small[si * smallCols + sj], "layer \(l) \(target) [\(i), \(j)]")
                            } else {
                                XCTAssertEqual(value, 0, "layer \(l) \(target) [\(i), \(j)] is pruned")
                                prunedEntries += 1
                            }
                        }
                    }
                    if manifest.kept[l] != nil { XCTAssertGreaterThan(prunedEntries, 0, "layer \(l) \(target)") }
                }
            }
            XCTAssertEqual(recovered.lmHead!.a.toArray(), adapter.lmHead!.a.toArray())
            XCTAssertEqual(recovered.lmHead!.b.toArray(), adapter.lmHead!.b.toArray())
        }
    }

    func testAZeroInitialisedAdapterRecoversToAnExactNoOp() throws {
        let model = PruningFixtures.gqaModel()
        let (carrier, adapter) = try carrierAndAdapter(model, b: .zero)
        let base = try PruningFixtures.logits(model)
        for fill in [LoRARecovery.Fill.zero, .normal(seed: 1)] {
            let recovered = try LoRARecovery.recover(adapter: adapter, manifest: carrier.pruning!, target: model.config, fill: fill)
            XCTAssertEqual(try PruningFixtures.logits(model, adapter: recovered), base, "\(fill)")
        }
    }

    func testNormalFillDrawsOnlyThePrunedColumnsOfA() throws {
        let model = PruningFixtures.gqaModel()
        let (carrier, adapter) = try carrierAndAdapter(model)
        let manifest = carrier.pruning!
        let recovered = try LoRARecovery.recover(adapter: adapter, manifest: manifest, target: model.config, fill: .normal(seed: 3))
        let again = try LoRARecovery.recover(adapter: adapter, manifest: manifest, target: model.config, fill: .normal(seed: 3))
        XCTAssertEqual(recovered.pair(.down, layer: 2)!.a.toArray(), again.pair(.down, layer: 2)!.a.toArray())
        let kept = manifest.kept[2]!.neurons, a = recovered.pair(.down, layer: 2)!.a.toArray(), small = adapter.pair(.down, layer: 2)!.a.toArray()
        var drawn: [Float] = []
        for r in 0..<4 {
            for c in 0..<96 {
                if let i = kept.firstIndex(of: c) { XCTAssertEqual(a[r * 96 + c], small[r * kept.count + i]) } else { drawn.append(a[r * 96 + c]) }
            }
        }
        let std = (drawn.reduce(0) { $0 + $1 * $1 } / Float(drawn.count)).squareRoot()
        XCTAssertEqual(std, 1 / 4, accuracy: 0.06, "N(0, (1/r)²) with r = 4, over \(drawn.count) draws")
        // B stays zero on pruned rows, so ΔW is still zero on the pruned rows of gate.
        let b = recovered.pair(.gate, layer: 2)!.b.toArray()
        for n in 0..<96 where !kept.contains(n) { XCTAssertEqual(Array(b[(n * 4)..<(n * 4 + 4)]), [0, 0, 0, 0]) }
    }

    func testRecoveredAdapterSavesAndLoadsOnTheOriginal() throws {
        let model = PruningFixtures.gqaModel()
        let (carrier, adapter) = try carrierAndAdapter(model)
        let recovered = try LoRARecovery.recover(adapter: adapter, manifest: carrier.pruning!, target: model.config)
        let directory = try temporaryDirectory()
        try PEFTAdapterFile.save(recovered, to: directory)
        let loaded = try PEFTAdapterFile.load(directory: directory, model: model)
        for ((_, a), (_, b)) in zip(loaded.namedPairs, recovered.namedPairs) {
            XCTAssertEqual(a.a.toArray(), b.a.toArray())
            XCTAssertEqual(a.b.toArray(), b.b.toArray())
        }
        let withAdapter = try PruningFixtures.logits(model, adapter: loaded)
        XCTAssertEqual(withAdapter, try PruningFixtures.logits(model, adapter: recovered))
        XCTAssertGreaterThan(maxAbsDifference(withAdapter, try PruningFixtures.logits(model)), 1e-3, "the adapter does something")
        // The carrier's own file does not fit the original.
        let carrierDirectory = try temporaryDirectory("carrier")
        try PEFTAdapterFile.save(adapter, to: carrierDirectory)
        XCTAssertThrowsError(try PEFTAdapterFile.load(directory: carrierDirectory, model: model)) { XCTAssertTrue($0 is AdapterShapeMismatch) }
    }

    func testSparseCarrierAdapterIsCopiedAsItIs() throws {
        let model = PruningFixtures.gqaModel()
        let carrier = try SparsityPruner.prune(model, method: .semi, ratio: 0.5)
        let adapter = LoRAAdapter.create(config: carrier.config, rank: 4, alpha: 8, targets: Self.allTargets, seed: 2, b: .normal(std: 0.1))
        let recovered = try LoRARecovery.recover(adapter: adapter, manifest: carrier.pruning!, target: model.config)
        XCTAssertFalse(recovered === adapter)
        for ((_, a), (_, b)) in zip(recovered.namedPairs, adapter.namedPairs) {
            XCTAssertEqual(a.a.toArray(), b.a.toArray())
            XCTAssertEqual(a.b.toArray(), b.b.toArray())
        }
    }

    func testMismatchedTargetsAndAdaptersAreRefused() throws {
        let model = PruningFixtures.gqaModel()
        let (carrier, adapter) = try carrierAndAdapter(model)
        // The carrier is not the original.
        XCTAssertThrowsError(try LoRARecovery.recover(adapter: adapter, manifest: carrier.pruning!, target: carrier.config)) {
            guard case .targetMismatch(let detail)? = $0 as? LoRARecovery.Failure else { return XCTFail("\($0)") }
            XCTAssertTrue(detail.contains("layer 1"), detail)
        }
        // An adapter made for the original is not the carrier's.
        let wrong = LoRAAdapter.create(config: model.config, rank: 4, alpha: 8, targets: [.q], seed: 1)
        XCTAssertThrowsError(try LoRARecovery.recover(adapter: wrong, manifest: carrier.pruning!, target: model.config)) {
            guard case .adapterMismatch(let detail)? = $0 as? LoRARecovery.Failure else { return XCTFail("\($0)") }
            XCTAssertTrue(detail.contains("model.layers.1.self_attn.q_proj"), detail)
        }
    }
}
