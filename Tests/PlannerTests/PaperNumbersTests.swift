import Foundation
import XCTest
@testable import MemoryPlanner

/// The LoRAM paper's accounting, reproduced number for number (loram-paper.md §8 items 1–5 and 7),
/// and config.json parsing.
final class PaperNumbersTests: XCTestCase {
    private func two(_ x: Double) -> String { String(format: "%.2f", x) }

    // MARK: §8.1 original counts

    func testOriginalParameterCounts() throws {
        XCTAssertEqual(try ModelShape.llama2_7B.parameterCount, 6_738_415_616)
        XCTAssertEqual(try ModelShape.llama2_13B.parameterCount, 13_015_864_320)
        XCTAssertEqual(try ModelShape.llama2_70B.parameterCount, 68_976_648_192)
        XCTAssertEqual(try ModelShape.llama31_8B.parameterCount, 8_030_261_248)
        XCTAssertEqual(try ModelShape.llama31_70B.parameterCount, 70_553_706_496)
    }

    func testPresetsByNameIgnoreCase() throws {
        XCTAssertEqual(ModelShape.preset(named: "LLaMA-2-13B"), .llama2_13B)
        XCTAssertEqual(ModelShape.preset(named: "llama-3.1-70b"), .llama31_70B)
        XCTAssertEqual(ModelShape.preset(named: "Llama-3.1-8B"), .llama31_8B)
        XCTAssertNil(ModelShape.preset(named: "llama-2-34b"))
        XCTAssertEqual(ModelShape.presets.map(\.name), ["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b"])
        for (_, shape) in ModelShape.presets {
            XCTAssertEqual(shape.headDim, 128)
            XCTAssertFalse(shape.tiedEmbeddings)
        }
    }

    // MARK: §8.2–8.4 structured rows: count, ratios, HBM

    private struct Row {
        let model: ModelShape, ratio: Double, pruned: Int
        let loram: String, hbm: String, qloram: String?, qhbm: String?
    }

    private let rows: [Row] = [
        Row(model: .llama2_13B, ratio: 0.65, pruned: 6_005_662_720, loram: "2.17", hbm: "11.19", qloram: nil, qhbm: nil),
        Row(model: .llama2_70B, ratio: 0.65, pruned: 28_099_436_544, loram: "2.45", hbm: "52.34", qloram: "9.82", qhbm: "13.08"),
        Row(model: .llama2_70B, ratio: 0.75, pruned: 21_488_738_304, loram: "3.21", hbm: "40.03", qloram: "12.84", qhbm: "10.01"),
        Row(model: .llama2_70B, ratio: 0.85, pruned: 16_272_924_672, loram: "4.24", hbm: "30.31", qloram: "16.95", qhbm: "7.58"),
        Row(model: .llama2_70B, ratio: 0.95, pruned: 9_662_226_432, loram: "7.14", hbm: "18.00", qloram: "28.56", qhbm: "4.50"),
        Row(model: .llama31_70B, ratio: 0.85, pruned: 17_849_982_976, loram: "3.95", hbm: "33.25", qloram: "15.81", qhbm: "8.31"),
    ]

    func testStructuredRowsMatchThePaper() throws {
        for row in rows {
            let name = "\(try row.model.parameterCount) at \(row.ratio)"
            let accounting = try ParameterAccounting(row.model, pruning: .structured(ratio: row.ratio))
            XCTAssertEqual(accounting.original, try row.model.parameterCount, name)
            XCTAssertEqual(accounting.pruned, row.pruned, name)
            XCTAssertEqual(two(accounting.loramReduction), row.loram, name)
            XCTAssertEqual(two(accounting.loramHBMGiB), row.hbm, name)
            if let q = row.qloram { XCTAssertEqual(two(accounting.qloramReduction), q, name) }
            if let q = row.qhbm { XCTAssertEqual(two(accounting.qloramHBMGiB), q, name) }
        }
    }

    func testQLoRAMColumnIsPrunedOverFour() throws {
        let a = try ParameterAccounting(.llama2_13B, pruning: .structured(ratio: 0.65))
        XCTAssertEqual(a.qloramParameters, 1_501_415_680)
        XCTAssertEqual(two(a.qloramReduction), "8.67")
        XCTAssertEqual(two(a.qloramHBMGiB), "2.80")
        XCTAssertEqual(try ParameterAccounting(.llama31_70B, pruning: .structured(ratio: 0.85)).qloramParameters, 4_462_495_744)
    }

    func testBaselines() {
        XCTAssertEqual(two(try ParameterAccounting(large: .llama2_13B, small: .llama2_7B).loramReduction), "1.93")
        XCTAssertEqual(two(try ParameterAccounting(large: .llama2_70B, small: .llama2_13B).loramReduction), "5.30")
        XCTAssertEqual(two(try ParameterAccounting(large: .llama31_70B, small: .llama31_8B).loramReduction), "8.79")
    }

    func testSemiAndUnstructuredKeepTheShapeAndScaleOnlyLinears() throws {
        let semi = try ParameterAccounting(.llama2_13B, pruning: .semiStructured(zeros: 2, group: 4))
        XCTAssertEqual(semi.pruned, 6_671_979_520)
        XCTAssertEqual(two(semi.loramReduction), "1.95")
        XCTAssertEqual(two(semi.loramHBMGiB), "12.43")
        XCTAssertEqual(try ModelShape.llama2_13B.prunedParameterCount(.semiStructured(zeros: 4, group: 8)), 6_671_979_520)

        let unst = try ParameterAccounting(.llama2_13B, pruning: .unstructured(sparsity: 0.55))
        XCTAssertEqual(unst.pruned, 6_037_591_040)
        XCTAssertEqual(two(unst.loramReduction), "2.16")
        XCTAssertEqual(two(unst.loramHBMGiB), "11.25")

        XCTAssertEqual(try ModelShape.llama2_13B.pruned(.unstructured(sparsity: 0.55)), .llama2_13B)
        XCTAssertEqual(try ModelShape.llama2_13B.pruned(.semiStructured(zeros: 2, group: 4)), .llama2_13B)
    }

    // MARK: §8.5 kept shapes

    private func assertKept(_ model: ModelShape, _ r: Double, heads: Int, kv: Int, mlp: Int, line: UInt = #line) throws {
        let pruned = try model.structurallyPruned(ratio: r)
        let L = model.layers.count
        XCTAssertEqual(pruned.layers.count, L, line: line)
        for i in 0..<L {
            let expected = (4..<(L - 2)).contains(i) ? ModelShape.Layer(heads: heads, kvHeads: kv, intermediate: mlp) : model.layers[i]
            XCTAssertEqual(pruned.layers[i], expected, "layer \(i)", line: line)
        }
        XCTAssertEqual(pruned.headDim, 128, line: line)
        XCTAssertEqual(pruned.hidden, model.hidden, line: line)
        XCTAssertEqual(pruned.vocab, model.vocab, line: line)
    }

    func testKeptShapes() throws {
        try assertKept(.llama2_13B, 0.65, heads: 14, kv: 14, mlp: 4838)
        try assertKept(.llama2_70B, 0.65, heads: 24, kv: 3, mlp: 10035)
        try assertKept(.llama2_70B, 0.75, heads: 16, kv: 2, mlp: 7168)
        try assertKept(.llama2_70B, 0.85, heads: 16, kv: 2, mlp: 4300)
        try assertKept(.llama2_70B, 0.95, heads: 8, kv: 1, mlp: 1433)
        try assertKept(.llama31_70B, 0.85, heads: 16, kv: 2, mlp: 4300)
    }

    func testDefaultWindowClipsToSmallModels() throws {
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 80), 4..<78)
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 7), 4..<5)
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 6), 1..<5)
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 3), 1..<2)
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 2), 0..<2)
        XCTAssertEqual(ModelShape.defaultPrunedLayers(layerCount: 1), 0..<1)

        // The tiny golden model (2 layers, 4 heads over 2 kv heads) prunes both layers.
        let tiny = ModelShape(hidden: 64, intermediate: 176, layerCount: 2, heads: 4, kvHeads: 2, headDim: 16, vocab: 512)
        let pruned = try tiny.structurallyPruned(ratio: 0.5)
        XCTAssertEqual(pruned.layers, Array(repeating: .init(heads: 2, kvHeads: 1, intermediate: 88), count: 2))
        XCTAssertEqual(try tiny.structurallyPruned(ratio: 0.5, layers: 1..<2).layers,
                       [.init(heads: 4, kvHeads: 2, intermediate: 176), .init(heads: 2, kvHeads: 1, intermediate: 88)])
        XCTAssertEqual(try tiny.structurallyPruned(ratio: 0), tiny)
    }

    func testDegeneratePruningIsRefused() {
        let tiny = ModelShape(hidden: 64, intermediate: 176, layerCount: 2, heads: 4, kvHeads: 2, headDim: 16, vocab: 512)
        XCTAssertThrowsError(try tiny.structurallyPruned(ratio: 1)) { XCTAssertEqual($0 as? PruningError, .ratioOutOfRange(1)) }
        XCTAssertThrowsError(try tiny.structurallyPruned(ratio: -0.1)) { XCTAssertEqual($0 as? PruningError, .ratioOutOfRange(-0.1)) }
        XCTAssertThrowsError(try tiny.structurallyPruned(ratio: .nan))
        // 2 kv heads at 0.5 keep 1; at 0.6 int(1.2) = 1 removed, 1 kept; at 0.99 int(1.98) = 1, still 1 kept.
        XCTAssertEqual(try tiny.structurallyPruned(ratio: 0.99).layers[0].kvHeads, 1)
        // MHA at 0.8 with 4 heads: int(4·0.2) = 0 heads.
        let mha = ModelShape(hidden: 64, intermediate: 176, layerCount: 2, heads: 4, kvHeads: 4, vocab: 512)
        XCTAssertThrowsError(try mha.structurallyPruned(ratio: 0.8)) { error in
            XCTAssertEqual(error as? PruningError, .nothingKept(layer: 0, what: "kv heads", ratio: 0.8))
            XCTAssertTrue("\(error)".contains("keeps no kv heads in layer 0"), "\(error)")
        }
        // One neuron: ceil(1·0.5) = 1 removed, none kept.
        let narrow = ModelShape(hidden: 64, intermediate: 1, layerCount: 1, heads: 4, kvHeads: 2, headDim: 16, vocab: 512)
        XCTAssertThrowsError(try narrow.structurallyPruned(ratio: 0.5)) {
            XCTAssertEqual($0 as? PruningError, .nothingKept(layer: 0, what: "MLP neurons", ratio: 0.5))
        }
        XCTAssertThrowsError(try tiny.structurallyPruned(ratio: 0.5, layers: 1..<3)) {
            XCTAssertEqual($0 as? PruningError, .layersOutOfRange(1..<3, layerCount: 2))
        }
        XCTAssertThrowsError(try tiny.prunedParameterCount(.unstructured(sparsity: 1)))
        XCTAssertThrowsError(try tiny.prunedParameterCount(.semiStructured(zeros: 4, group: 4)))
    }

    // MARK: §8.7 LoRA trainable parameters, r = 8

    func testLoRATrainableCounts() throws {
        let withHead = LoRATarget.decoder.union([.lmHead])
        XCTAssertEqual(try ModelShape.llama2_13B.loraParameterCount(rank: 8), 31_293_440)
        XCTAssertEqual(try ModelShape.llama2_13B.loraParameterCount(rank: 8, targets: withHead), 31_590_400)

        let pruned13 = try ModelShape.llama2_13B.structurallyPruned(ratio: 0.65)
        XCTAssertEqual(try pruned13.loraParameterCount(rank: 8), 20_340_000)
        XCTAssertEqual(try pruned13.loraParameterCount(rank: 8, targets: withHead), 20_636_960)

        XCTAssertEqual(try ModelShape.llama2_70B.loraParameterCount(rank: 8), 103_546_880)
        XCTAssertEqual(try ModelShape.llama31_70B.loraParameterCount(rank: 8), 103_546_880)
        XCTAssertEqual(try ModelShape.llama2_70B.loraParameterCount(rank: 8, targets: withHead), 103_868_416)
        XCTAssertEqual(try ModelShape.llama31_70B.loraParameterCount(rank: 8, targets: withHead), 104_638_464)

        let pruned70 = try ModelShape.llama31_70B.structurallyPruned(ratio: 0.85)
        XCTAssertEqual(try pruned70.loraParameterCount(rank: 8), 52_078_400)
        XCTAssertEqual(try pruned70.loraParameterCount(rank: 8, targets: withHead), 53_169_984)

        // Targets count independently: q alone on the 13B is 40 layers × 8·(5120 + 5120).
        XCTAssertEqual(try ModelShape.llama2_13B.loraParameterCount(rank: 8, targets: [.q]), 40 * 8 * 10240)
        XCTAssertEqual(try ModelShape.llama2_13B.loraParameterCount(rank: 8, targets: []), 0)
    }
}
