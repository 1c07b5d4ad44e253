import Foundation
import XCTest
@testable import Runtime

/// A pruned model saved and loaded: per-layer shapes and the manifest come back, logits are
/// identical, and a manifest that does not describe config.json is a FormatError.
final class PruningManifestTests: XCTestCase {
    func testSaveAndLoadGiveTheSameModelAndManifest() throws {
        for (ratio, model) in [(0.5, PruningFixtures.gqaModel()), (0.75, PruningFixtures.mhaModel())] {
            let pruned = try StructuredPruner.prune(model, ratio: ratio, importance: .random(seed: 3))
            let directory = try temporaryDirectory()
            try pruned.save(to: directory)
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("loram_pruning.json").path))
            let loaded = try DecoderModel.load(directory: directory)
            XCTAssertEqual(loaded.pruning, pruned.pruning)
            XCTAssertEqual(loaded.config.layers, pruned.config.layers)
            XCTAssertEqual(try PruningFixtures.logits(loaded), try PruningFixtures.logits(pruned))
        }
        // An original saved over a pruned model's directory leaves no stale manifest behind.
        let directory = try temporaryDirectory()
        try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, importance: .l2).save(to: directory)
        try PruningFixtures.gqaModel().save(to: directory)
        XCTAssertNil(try DecoderModel.load(directory: directory).pruning)
    }

    func testSparseManifestRoundTrips() throws {
        let pruned = try SparsityPruner.prune(PruningFixtures.gqaModel(), method: .magnitude, ratio: 0.55)
        let directory = try temporaryDirectory()
        try pruned.save(to: directory)
        let loaded = try DecoderModel.load(directory: directory)
        XCTAssertEqual(loaded.pruning?.method, .magnitude)
        XCTAssertEqual(loaded.pruning?.ratio, 0.55)
        XCTAssertEqual(loaded.pruning?.kept, Array(repeating: nil, count: 5))
    }

    func testCorruptManifestsAreFormatErrors() throws {
        let pruned = try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, importance: .l2)
        let directory = try temporaryDirectory()
        try pruned.save(to: directory)
        let url = directory.appendingPathComponent(PruningManifest.fileName)
        let good = try Data(contentsOf: url)
        let kept = pruned.pruning!.kept[1]!

        func expectFormatError(_ label: String, _ change: (inout PruningManifest) -> Void, mentioning text: String) throws {
            try assertManifestRefused(pruned, in: directory, label, change, mentioning: text)
        }
        try expectFormatError("unsorted", { $0.kept[1]!.neurons.swapAt(0, 1) }, mentioning: "sorted")
        try expectFormatError("repeated", { $0.kept[1]!.neurons[1] = kept.neurons[0] }, mentioning: "sorted")
        try expectFormatError("count", { $0.kept[1]!.neurons.removeLast() }, mentioning: "config.json says 48")
        try expectFormatError("range", { $0.kept[1]!.neurons[47] = 96 }, mentioning: "0..<96")
        try expectFormatError("groups", { $0.kept[1]!.qHeads = [0, 1, 2, 3] }, mentioning: "are not the heads")
        try expectFormatError("untouched", { $0.kept[1] = nil }, mentioning: "no kept indices")
        try expectFormatError("layers", { $0.original.removeLast() }, mentioning: "describes 4 layers")
        try expectFormatError("version", { $0.version = 2 }, mentioning: "version 1")

        for (label, text) in [("not JSON", "{"), ("missing key", #"{"format": "loramd-pruning", "version": 1}"#)] {
            try Data(text.utf8).write(to: url)
            XCTAssertThrowsError(try DecoderModel.load(directory: directory), label) {
                XCTAssertEqual(($0 as? FormatError)?.file, "loram_pruning.json", label)
            }
        }
        try good.write(to: url)
        XCTAssertNoThrow(try DecoderModel.load(directory: directory))
    }

    /// Original widths past SizeLimits are a FormatError before anything is sized by them: heads
    /// of 2^50 made the GQA group check build a list of 2^49 indices (an allocation abort).
    func testManifestWithEnormousWidthsIsAFormatError() throws {
        let pruned = try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, importance: .l2)
        let directory = try temporaryDirectory()
        try pruned.save(to: directory)
        let rows: [(String, (inout PruningManifest) -> Void, String)] = [
            ("heads", { $0.original[1].heads = 1 << 50 }, "num_attention_heads is 1125899906842624, past loramd's limit of 16384"),
            ("kv heads", { $0.original[1].heads = 1 << 60; $0.original[1].kvHeads = 1 << 58 }, "num_attention_heads"),
            ("neurons", { $0.original[1].intermediate = 1 << 62 }, "intermediate_size is 4611686018427387904"),
            ("untouched layer", { $0.original[0].intermediate = 1 << 40 }, "intermediate_size"),
            // Within the limits, but a GQA group the kept lists cannot hold: refused by counting.
            ("group", { $0.original[1].heads = $0.original[1].kvHeads * 4000 }, "are not the heads"),
        ]
        for (label, change, text) in rows {
            try assertManifestRefused(pruned, in: directory, label, change, mentioning: text)
        }
    }

    /// Writes `pruned`'s manifest changed by `change` into `directory` and checks the load is a
    /// FormatError of loram_pruning.json whose problem mentions `text`.
    func assertManifestRefused(_ pruned: DecoderModel, in directory: URL, _ label: String, _ change: (inout PruningManifest) -> Void,
                               mentioning text: String, file: StaticString = #filePath, line: UInt = #line) throws {
        var manifest = pruned.pruning!
        change(&manifest)
        try manifest.jsonData().write(to: directory.appendingPathComponent(PruningManifest.fileName))
        XCTAssertThrowsError(try DecoderModel.load(directory: directory), label, file: file, line: line) { error in
            guard let format = error as? FormatError else { return XCTFail("\(label): \(error)", file: file, line: line) }
            XCTAssertEqual(format.file, "loram_pruning.json", label, file: file, line: line)
            XCTAssertTrue(format.problem.contains(text), "\(label): \(format.problem)", file: file, line: line)
        }
    }
}
