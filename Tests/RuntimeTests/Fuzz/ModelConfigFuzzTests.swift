import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated config.json files, alone and in whole checkpoint folders (config, weights, both):
/// parsing and loading succeed or are FormatErrors; never a trap, a hang, or another error.
/// Huge layer counts and widths are among the mutations: SizeLimits refuses them before anything
/// is sized by them (before the sizes branch, 2^31 layers aborted on allocating the layer list).
final class ModelConfigFuzzTests: XCTestCase {
    /// Configs reaching each branch: plain, transformers 5 rope_parameters, llama3 scaling with
    /// tied embeddings and a list of eos ids, and a pruned model's per-layer widths.
    static func validConfigs() throws -> [Data] {
        var llama3 = FuzzModels.microConfig
        llama3.ropeScaling = .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32)
        llama3.tiedEmbeddings = true
        llama3.eosTokenIds = [2, 3]
        var pruned = FuzzModels.microConfig
        pruned.layers[1] = .init(heads: 1, kvHeads: 1, intermediate: 12)
        var linear = FuzzModels.microConfig
        linear.ropeScaling = .linear(factor: 2)
        return [try FuzzModels.microConfig.jsonData(), try Data(contentsOf: Fixtures.tinyModel.appendingPathComponent("config.json")),
                try llama3.jsonData(), try pruned.jsonData(), try linear.jsonData()]
    }

    func testMutatedConfigsParseOrAreFormatErrors() throws {
        let configs = try Self.validConfigs()
        for data in configs { XCTAssertNoThrow(try ModelConfig(json: data)) }
        fuzz("config-json", cases: 3000) { random, _ in
            let config = try ModelConfig(json: JSONMutator.mutate(configs[Int(random.next() % UInt64(configs.count))], &random))
            XCTAssertEqual(config.layers.count, config.layerCount)
            XCTAssertEqual(config.headDim % 2, 0)
        }
    }

    /// A micro checkpoint folder with the config, the weights, or both mutated, then opened,
    /// planned and loaded in a random dtype.
    func testMutatedModelFoldersLoadOrAreFormatErrors() throws {
        let source = try temporaryDirectory("source")
        try FuzzModels.microModel().save(to: source)
        let files = try FuzzModels.files(of: source)
        let folder = try temporaryDirectory("folder")
        try FuzzModels.write(files, to: folder)
        XCTAssertEqual(try ModelCheckpoint.open(folder).loadModel(dtype: nil).config, FuzzModels.microConfig)
        let weights = [UInt8](files[CheckpointDirectory.singleFileName]!)
        fuzz("model-folder", cases: 800) { random, _ in
            var mutated = files
            let choice = random.next() % 4
            if choice != 1 { mutated[ModelConfig.fileName] = JSONMutator.mutate(files[ModelConfig.fileName]!, &random) }
            if choice != 0 {
                mutated[CheckpointDirectory.singleFileName] = Data(random.next() % 2 == 0
                    ? ByteMutator.mutate(weights, &random, fields: [0])
                    : SafetensorsFuzzTests.mutateHeader(weights, &random))
            }
            try FuzzModels.write(mutated, to: folder)
            let checkpoint = try ModelCheckpoint.open(folder)
            let dtype = [nil, TensorDType.f32, .bf16, .f16][Int(random.next() % 4)]
            XCTAssertGreaterThan(checkpoint.plannedBytes(dtype: dtype), 0)
            let model = try checkpoint.loadModel(dtype: dtype)
            XCTAssertEqual(model.config, checkpoint.config)
        }
    }
}
