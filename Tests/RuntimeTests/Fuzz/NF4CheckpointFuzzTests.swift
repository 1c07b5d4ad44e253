import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated NF4 checkpoints (bitsandbytes layout: packed codes, absmax, nested absmax and maps, a
/// JSON quant state per weight): loading succeeds, and the weights dequantize, or is a
/// FormatError; never a trap, a hang, or another error. Besides byte and header mutations, a
/// quant state's JSON is mutated and the file rewritten around it, so its checks are reached.
final class NF4CheckpointFuzzTests: XCTestCase {
    struct Tensor {
        let name: String
        let dtype: TensorDType
        let shape: [Int]
        let bytes: [UInt8]
    }

    static func tensors(of url: URL) throws -> [Tensor] {
        let file = try SafetensorsFile(url: url)
        return file.tensors.values.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }.map {
            Tensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: Array(file.bytes(of: $0)))
        }
    }

    static func safetensors(_ tensors: [Tensor]) throws -> Data {
        let directory = try FuzzModels.scratch("nf4")
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.safetensors")
        try SafetensorsWriter().write(tensors.map { tensor in
            SafetensorsWriter.Entry(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape) { buffer in
                tensor.bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
            }
        }, to: url)
        return try Data(contentsOf: url)
    }

    func testMutatedNF4CheckpointsLoadOrAreFormatErrors() throws {
        var folders: [(files: [String: Data], tensors: [Tensor])] = []
        for doubleQuant in [true, false] {
            let directory = try temporaryDirectory("source\(doubleQuant)")
            try FuzzModels.microModel().quantized(blockSize: 32, doubleQuant: doubleQuant).save(to: directory)
            folders.append((try FuzzModels.files(of: directory), try Self.tensors(of: directory.appendingPathComponent("model.safetensors"))))
        }
        let folder = try temporaryDirectory("folder")
        for source in folders {
            try FuzzModels.write(source.files, to: folder)
            XCTAssertTrue(try ModelCheckpoint.open(folder).loadModel(dtype: nil).isQuantized)
        }
        fuzz("nf4-checkpoint", cases: 500) { random, _ in
            let source = folders[Int(random.next() % UInt64(folders.count))]
            var files = source.files
            let weights = "model.safetensors"
            switch random.next() % 5 {
            case 0:
                files[weights] = Data(ByteMutator.mutate([UInt8](files[weights]!), &random, fields: [0]))
            case 1:
                files[weights] = Data(SafetensorsFuzzTests.mutateHeader([UInt8](files[weights]!), &random))
            case 2:
                files[ModelConfig.fileName] = JSONMutator.mutate(files[ModelConfig.fileName]!, &random)
            default:  // one quant state, or one of its tensors, rewritten
                var tensors = source.tensors
                let states = tensors.indices.filter { tensors[$0].name.hasSuffix(NF4Checkpoint.stateSuffix) }
                let k = states[Int(random.next() % UInt64(states.count))]
                if random.next() % 3 == 0 {
                    let parts = tensors.indices.filter { tensors[$0].name.hasPrefix(tensors[k].name.replacingOccurrences(of: NF4Checkpoint.stateSuffix, with: "")) && $0 != k }
                    let p = parts[Int(random.next() % UInt64(parts.count))]
                    let bytes = ByteMutator.mutate(tensors[p].bytes, &random)
                    let shape = tensors[p].dtype.byteSize == 1 ? [bytes.count] : tensors[p].shape
                    tensors[p] = Tensor(name: tensors[p].name, dtype: tensors[p].dtype, shape: shape,
                                        bytes: bytes.count == tensors[p].bytes.count || shape != tensors[p].shape ? bytes : tensors[p].bytes)
                } else {
                    let state = [UInt8](JSONMutator.mutate(Data(tensors[k].bytes), &random))
                    tensors[k] = Tensor(name: tensors[k].name, dtype: .u8, shape: [state.count], bytes: state)
                }
                files[weights] = try Self.safetensors(tensors)
            }
            try FuzzModels.write(files, to: folder)
            let checkpoint = try ModelCheckpoint.open(folder)
            _ = checkpoint.plannedBytes(dtype: nil)
            let model = try checkpoint.loadModel(dtype: nil)
            for layer in model.layers { for (_, weight) in layer.linears { XCTAssertEqual(weight.toArray().count, weight.elementCount) } }
        }
    }
}
