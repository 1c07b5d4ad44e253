import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated PEFT adapter folders (adapter_config.json, adapter_model.safetensors, or both) loaded
/// for a micro model: an adapter, a FormatError, or an AdapterShapeMismatch (a contract error of
/// its own); never a trap, a hang, or another error.
final class PEFTAdapterFuzzTests: XCTestCase {
    /// Saved by loramd (a list of targets), and the same weights with a regex target_modules
    /// and PEFT's in-memory tensor names.
    static func validFolders(model: DecoderModel) throws -> [[String: Data]] {
        let adapter = LoRAAdapter(config: model.config, rank: 2, alpha: 4, targets: [.q, .v, .down])
        for (_, pair) in adapter.namedPairs {
            let values = (0..<pair.b.elementCount).map { Float($0 % 7) / 10 }
            values.withUnsafeBufferPointer { pair.b.assign($0.baseAddress!) }
        }
        let directory = try FuzzModels.scratch("peft")
        defer { try? FileManager.default.removeItem(at: directory) }
        try PEFTAdapterFile.save(adapter, to: directory, baseModelNameOrPath: "micro")
        let saved = try FuzzModels.files(of: directory)
        var config = try JSONSerialization.jsonObject(with: saved[PEFTAdapterConfig.fileName]!) as! [String: Any]
        config["target_modules"] = #".*\.(q_proj|v_proj|down_proj)"#
        var regex = saved
        regex[PEFTAdapterConfig.fileName] = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        return [saved, regex]
    }

    func testMutatedPEFTAdaptersLoadOrAreContractErrors() throws {
        let model = FuzzModels.microModel()
        let folders = try Self.validFolders(model: model)
        let directory = try temporaryDirectory()
        for files in folders {
            try FuzzModels.write(files, to: directory)
            XCTAssertEqual(try PEFTAdapterFile.load(directory: directory, model: model).targets, [.q, .v, .down])
        }
        fuzz("peft-adapter", cases: 500, allowing: [AdapterShapeMismatch.self]) { random, _ in
            var files = folders[Int(random.next() % UInt64(folders.count))]
            let choice = random.next() % 5
            if choice < 2 || choice == 4 {
                files[PEFTAdapterConfig.fileName] = JSONMutator.mutate(files[PEFTAdapterConfig.fileName]!, &random)
            }
            if choice >= 2 {
                let weights = [UInt8](files[PEFTAdapterFile.weightsFileName]!)
                files[PEFTAdapterFile.weightsFileName] = Data(random.next() % 2 == 0
                    ? ByteMutator.mutate(weights, &random, fields: [0])
                    : SafetensorsFuzzTests.mutateHeader(weights, &random))
            }
            if random.next() % 40 == 0 { files.removeValue(forKey: random.next() % 2 == 0 ? PEFTAdapterConfig.fileName : PEFTAdapterFile.weightsFileName) }
            try FuzzModels.write(files, to: directory)
            let adapter = try PEFTAdapterFile.load(directory: directory, model: model)
            XCTAssertFalse(adapter.targets.isEmpty)
        }
    }

    /// Found by the fuzz test: r = 99999999999 in adapter_config.json was allocated as
    /// zero-filled pairs of that rank before any tensor was looked at, and the process died.
    /// SizeLimits now refuses such an r in the config; an r within the limit but not the file's
    /// is refused from the tensors' shapes before the adapter is allocated.
    func testAnAbsurdRankIsAFormatErrorNotAnAllocation() throws {
        let model = FuzzModels.microModel()
        let directory = try temporaryDirectory()
        for r in [99_999_999_999, SizeLimits.loraRank] {
            var files = try Self.validFolders(model: model)[0]
            var config = try JSONSerialization.jsonObject(with: files[PEFTAdapterConfig.fileName]!) as! [String: Any]
            config["r"] = r
            files[PEFTAdapterConfig.fileName] = try JSONSerialization.data(withJSONObject: config)
            try FuzzModels.write(files, to: directory)
            XCTAssertThrowsError(try PEFTAdapterFile.load(directory: directory, model: model)) { error in
                guard let format = error as? FormatError else { return XCTFail("\(error)") }
                XCTAssertTrue(format.problem.contains(r == SizeLimits.loraRank
                    ? "tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [2, 16], rank 2; adapter_config.json says r = 65536"
                    : "r"), format.problem)
            }
        }
    }
}
