import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated loram_pruning.json files (and the config.json they are checked against): loading
/// succeeds, describing the config, or is a FormatError; never a trap, a hang, or another error.
/// Enormous per-layer counts are among the mutations (SizeLimits refuses them).
final class PruningManifestFuzzTests: XCTestCase {
    func testMutatedPruningManifestsLoadOrAreFormatErrors() throws {
        let structured = try temporaryDirectory("structured"), sparse = try temporaryDirectory("sparse")
        try StructuredPruner.prune(PruningFixtures.gqaModel(), ratio: 0.5, layers: 1..<4, importance: .random(seed: 5)).save(to: structured)
        try SparsityPruner.prune(PruningFixtures.gqaModel(), method: .magnitude, ratio: 0.5).save(to: sparse)
        let sources = [structured, sparse]
        let originals = try sources.map { directory in
            (config: try Data(contentsOf: directory.appendingPathComponent(ModelConfig.fileName)),
             manifest: try Data(contentsOf: directory.appendingPathComponent(PruningManifest.fileName)))
        }
        for directory in sources { XCTAssertNotNil(try DecoderModel.load(directory: directory).pruning) }
        fuzz("pruning-manifest", cases: 1000) { random, _ in
            let k = Int(random.next() % 2)
            let directory = sources[k]
            var configData = originals[k].config, manifestData = originals[k].manifest
            switch random.next() % 6 {
            case 0: configData = JSONMutator.mutate(configData, &random)
            case 1: manifestData = Data(ByteMutator.mutate([UInt8](manifestData), &random))
            default: manifestData = JSONMutator.mutate(manifestData, &random)
            }
            try FileFuzzing.write(configData, to: directory.appendingPathComponent(ModelConfig.fileName))
            try FileFuzzing.write(manifestData, to: directory.appendingPathComponent(PruningManifest.fileName))
            let config = try ModelConfig(json: configData)
            guard let manifest = try PruningManifest.load(directory: directory, config: config) else {
                return XCTFail("the manifest was not read")
            }
            XCTAssertEqual(manifest.originalConfig(of: config).layers.count, config.layerCount)
            if random.next() % 4 == 0 {
                let model = try DecoderModel.load(directory: directory)
                XCTAssertEqual(model.pruning, manifest)
            }
        }
        for (directory, original) in zip(sources, originals) {
            try FileFuzzing.write(original.config, to: directory.appendingPathComponent(ModelConfig.fileName))
            try FileFuzzing.write(original.manifest, to: directory.appendingPathComponent(PruningManifest.fileName))
        }
    }
}
