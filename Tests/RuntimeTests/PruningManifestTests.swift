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
            let loaded = try LlamaModel.load(directory: directory)
            XCTAssertEqual(loaded.pruning, pruned.pruning)
            XCTAssertEqual(loaded.config.layers, pruned.config.layers)
            XCTAssertEqual(try PruningFixtures.logits(loaded), try PruningFixtures.logits(pruned))
        }
        // An original saved over a pruned model's directory leaves no stale manifest behind.
        let directory = try temporaryDirectory()
        try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, importance: .l2).save(to: directory)
        try PruningFixtures.gqaModel().save(to: directory)
        XCTAssertNil(try LlamaModel.load(directory: directory).pruning)
    }

    func testSparseManifestRoundTrips() throws {
        let pruned = try SparsityPruner.prune(PruningFixtures.gqaModel(), method: .magnitude, ratio: 0.55)
        let directory = try temporaryDirectory()
        try pruned.save(to: directory)
        let loaded = try LlamaModel.load(directory: directory)
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
            var manifest = pruned.pruning!
            change(&manifest)
            try manifest.jsonData().write(to: url)
            XCTAssertThrowsError(try LlamaModel.load(directory: directory), label) { error in
                guard let format = error as? FormatError else { return XCTFail("\(label): \(error)") }
                XCTAssertEqual(format.file, "loram_pruning.json", label)
                XCTAssertTrue(format.problem.contains(text), "\(label): \(format.problem)")
            }
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
            XCTAssertThrowsError(try LlamaModel.load(directory: directory), label) {
                XCTAssertEqual(($0 as? FormatError)?.file, "loram_pruning.json", label)
            }
        }
        try good.write(to: url)
        XCTAssertNoThrow(try LlamaModel.load(directory: directory))
    }
}
