import Foundation
import MemoryPlanner
import XCTest
@testable import Runtime

/// Mutated safetensors files and sharded checkpoint folders: opening either succeeds, with every
/// tensor's bytes inside the mapping, or is a FormatError; never a trap, a hang, or another error.
/// `scripts/fuzz-parsers safetensors` (or `sharded-index`) runs more.
final class SafetensorsFuzzTests: XCTestCase {
    /// Tensors of several dtypes and ranks, an empty one, and metadata.
    static func validFile() throws -> [UInt8] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loramd-fuzz-st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.safetensors")
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "note": "fuzz"]
        try writer.write([
            .floats("a.weight", (0..<24).map(Float.init), shape: [4, 6]),
            .floats("b.weight", (0..<8).map(Float.init), shape: [2, 2, 2], as: .bf16),
            .floats("norm", [1, 2, 3], shape: [3], as: .f16),
            SafetensorsWriter.Entry(name: "codes", dtype: .u8, shape: [5]) { $0.initializeMemory(as: UInt8.self, repeating: 7) },
            .floats("empty", [], shape: [0, 4]),
        ], to: url)
        return [UInt8](try Data(contentsOf: url))
    }

    /// The header JSON of `file` mutated, the data kept; the length field right, or sometimes not.
    static func mutateHeader(_ file: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        let length = Int(file[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = JSONMutator.mutate(Data(file[8..<(8 + length)]), &random)
        var out = [UInt8](repeating: 0, count: 8)
        ByteMutator.overwrite(&out, at: 0, width: 8, with: random.next() % 8 == 0 ? ByteMutator.integer(&random) : UInt64(header.count))
        return out + header + file[(8 + length)...]
    }

    /// Every byte of every tensor, read: a range outside the mapping would fault here.
    static func touchAll(_ file: SafetensorsFile) -> Int {
        file.tensors.values.reduce(0) { total, info in
            let bytes = file.bytes(of: info)
            XCTAssertEqual(bytes.count, info.elementCount * info.dtype.byteSize, info.name)
            return total &+ bytes.reduce(0) { $0 &+ Int($1) }
        }
    }

    func testMutatedSafetensorsFilesOpenOrAreFormatErrors() throws {
        let valid = try Self.validFile()
        let url = try temporaryDirectory().appendingPathComponent("model.safetensors")
        XCTAssertEqual(try SafetensorsFile(url: { try! Data(valid).write(to: url); return url }()).tensors.count, 5)
        fuzz("safetensors", cases: 2000) { random, _ in
            let bytes = random.next() % 2 == 0 ? ByteMutator.mutate(valid, &random, fields: [0, 4]) : Self.mutateHeader(valid, &random)
            try FileFuzzing.write(Data(bytes), to: url)
            _ = Self.touchAll(try SafetensorsFile(url: url))
        }
    }

    /// A checkpoint in three shards with an index; each case mutates the index or one shard.
    func testMutatedShardedCheckpointsOpenOrAreFormatErrors() throws {
        let source = try temporaryDirectory("source")
        let names = ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"]
        var weightMap: [String: String] = [:]
        for (k, name) in names.enumerated() {
            let tensors = (0..<2).map { "layer\(k).t\($0)" }
            try SafetensorsWriter().write(tensors.map { .floats($0, [1, 2, 3, 4], shape: [2, 2]) }, to: source.appendingPathComponent(name))
            for tensor in tensors { weightMap[tensor] = name }
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 96], "weight_map": weightMap], options: [.sortedKeys])
        let shards = try names.map { [UInt8](try Data(contentsOf: source.appendingPathComponent($0))) }
        let folder = try temporaryDirectory("sharded")
        func write(index: Data, shards: [[UInt8]]) throws {
            try FileFuzzing.write(index, to: folder.appendingPathComponent(CheckpointDirectory.indexFileName))
            for (name, bytes) in zip(names, shards) { try FileFuzzing.write(Data(bytes), to: folder.appendingPathComponent(name)) }
        }
        try write(index: index, shards: shards)
        XCTAssertEqual(try CheckpointDirectory(url: folder).tensorNames.count, 6)
        fuzz("sharded-index", cases: 800) { random, _ in
            var mutatedShards = shards, mutatedIndex = index
            if random.next() % 3 == 0 {
                let k = Int(random.next() % 3)
                mutatedShards[k] = random.next() % 2 == 0 ? ByteMutator.mutate(shards[k], &random, fields: [0]) : Self.mutateHeader(shards[k], &random)
            } else {
                mutatedIndex = JSONMutator.mutate(index, &random)
            }
            try write(index: mutatedIndex, shards: mutatedShards)
            let checkpoint = try CheckpointDirectory(url: folder)
            for name in checkpoint.tensorNames {
                let info = try XCTUnwrap(checkpoint.info(name))
                XCTAssertEqual(checkpoint.bytes(of: name)?.count, info.elementCount * info.dtype.byteSize)
            }
        }
    }
}
