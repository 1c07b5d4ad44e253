import Foundation
import XCTest
@testable import Runtime

/// The writer against gguf-py: the same quantized bytes, the same files, and round trips through
/// the reader.
final class GGUFWriterTests: XCTestCase {
    static let encodable: [GGUFTensorType] = [.f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1]

    func testQuantizersMatchGGUFPyByteForByte() throws {
        let file = try Fixtures.ggufFile("types.gguf")
        XCTAssertEqual(Set(Self.encodable + [.f32]), Set(GGUFTensorType.allCases.filter(\.isEncodable)))
        for type in Self.encodable {
            let source = try file.floats("\(type.name).src")
            let expected = Array(file.bytes(of: try XCTUnwrap(file.tensors["\(type.name).q"])))
            let encoded = source.withUnsafeBufferPointer { GGUFQuantization.quantize($0, as: type) }
            XCTAssertEqual(encoded.count, expected.count, type.name)
            let blocks = zip(encoded, expected).enumerated().filter { $0.element.0 != $0.element.1 }.map { $0.offset / type.typeSize }
            XCTAssertTrue(blocks.isEmpty, "\(type.name): blocks \(Set(blocks).sorted()) differ from gguf-py's")
        }
    }

    /// Rewrites a gguf-py file from what the reader saw: the same metadata in the same order and
    /// the same tensors must give the same bytes.
    func testWriterReproducesGGUFPyFilesByteForByte() throws {
        let directory = try temporaryDirectory()
        for name in ["metadata.gguf", "types.gguf"] {
            let original = try Fixtures.ggufFile(name)
            var writer = GGUFWriter(alignment: original.alignment)
            for key in original.metadataKeys { writer.set(key, original.metadata[key]!) }
            for tensorName in original.tensorNames {
                let info = original.tensors[tensorName]!
                writer.addTensor(tensorName, dimensions: info.dimensions, type: info.type, bytes: Array(original.bytes(of: info)))
            }
            let url = directory.appendingPathComponent(name)
            try writer.write(to: url)
            XCTAssertEqual(try Data(contentsOf: url), try Data(contentsOf: Fixtures.gguf.appendingPathComponent(name)), name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["metadata.gguf", "types.gguf"],
                       "no temporary files left beside the output")
    }

    func testRoundTripOfEveryValueTypeAndEncodableTensorType() throws {
        let metadata: [(String, GGUFValue)] = [
            ("u8", .uint8(255)), ("i8", .int8(-128)), ("u16", .uint16(65535)), ("i16", .int16(-32768)),
            ("u32", .uint32(.max)), ("i32", .int32(.min)), ("u64", .uint64(.max)), ("i64", .int64(.min)),
            ("f32", .float32(-.infinity)), ("f64", .float64(.pi)), ("yes", .bool(true)), ("no", .bool(false)),
            ("text", .string("tokenizer ▁the")), ("raw", .string([0x80, 0x00, 0xFF])), ("empty", .string([UInt8]())),
            ("none", .array(.uint64, [])),
            ("tokens", .array(.string, [.string("<s>"), .string([0xE2, 0x96]), .string("")])),
            ("scores", .array(.float32, [.float32(-1), .float32(0.5)])),
            ("nested", .array(.array, [.array(.int64, [.int64(1)]), .array(.array, [.array(.bool, [.bool(false)])]), .array(.uint8, [])])),
        ]
        var writer = GGUFWriter(alignment: 128)
        for (key, value) in metadata { writer.set(key, value) }
        let values = (0..<512).map { Float(sin(Double($0) * 0.37) * 3) }
        for type in Self.encodable + [.f32] {
            try writer.addTensor("\(type.name).weight", dimensions: [64, 8], values: values, as: type)
        }
        writer.addTensor("raw.q4_k", dimensions: [256, 1, 1, 2], type: .q4_K, bytes: (0..<288).map { UInt8($0 % 251) })

        let url = try temporaryDirectory().appendingPathComponent("round-trip.gguf")
        try writer.write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 128)
        XCTAssertEqual(file.metadataKeys, ["general.alignment"] + metadata.map(\.0))
        XCTAssertEqual(file.metadata["general.alignment"], .uint32(128))
        for (key, value) in metadata {
            if case .float32(let f) = value { XCTAssertEqual(file.metadata[key]?.doubleValue, Double(f)); continue }
            XCTAssertEqual(file.metadata[key], value, key)
        }
        XCTAssertEqual(file.tensorNames, (Self.encodable + [.f32]).map { "\($0.name).weight" } + ["raw.q4_k"])
        for type in Self.encodable + [.f32] {
            let info = try XCTUnwrap(file.tensors["\(type.name).weight"])
            XCTAssertEqual(info.type, type)
            XCTAssertEqual(info.dimensions, [64, 8])
            XCTAssertEqual(info.offset % 128, 0)
            XCTAssertEqual(Array(file.bytes(of: info)), values.withUnsafeBufferPointer { GGUFQuantization.quantize($0, as: type) })
            // A loose bound per type: 4-bit codes of values in [-3, 3] are within a step of 6/15.
            let tolerance: Float = [.f32: 0, .f16: 0.002, .bf16: 0.02, .q8_0: 0.02][type] ?? 0.4
            XCTAssertLessThanOrEqual(maxAbsDifference(try file.floats(info.name), values), tolerance, type.name)
        }
        let raw = try XCTUnwrap(file.tensors["raw.q4_k"])
        XCTAssertEqual(raw.dimensions, [256, 1, 1, 2])
        XCTAssertEqual(Array(file.bytes(of: raw)), (0..<288).map { UInt8($0 % 251) })
    }

    func testDefaultAlignmentIsNotWrittenAndSetReplacesInPlace() throws {
        var writer = GGUFWriter()
        writer.set("a", .uint8(1))
        writer.set("b", .uint8(2))
        writer.set("a", .string("again"))
        let url = try temporaryDirectory().appendingPathComponent("plain.gguf")
        try writer.write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertEqual(file.metadataKeys, ["a", "b"])
        XCTAssertEqual(file.metadata["a"]?.stringValue, "again")
        XCTAssertEqual(file.alignment, 32)
        XCTAssertTrue(file.tensors.isEmpty)
    }

    func testBadInputIsRefusedBeforeAnythingIsWritten() throws {
        var writer = GGUFWriter()
        XCTAssertThrowsError(try writer.addTensor("w", dimensions: [256], values: [Float](repeating: 0, count: 256), as: .q4_K)) {
            XCTAssertTrue("\($0)".contains("cannot encode Q4_K"), "\($0)")
        }
        XCTAssertThrowsError(try writer.addTensor("w", dimensions: [32, 2], values: [Float](repeating: 0, count: 32), as: .q8_0)) {
            XCTAssertTrue("\($0)".contains("32 values for dimensions [32, 2] (64 elements)"), "\($0)")
        }
        XCTAssertThrowsError(try writer.addTensor("w", dimensions: [48], values: [Float](repeating: 0, count: 48), as: .q4_0)) {
            XCTAssertTrue("\($0)".contains("ne0 = 48 is not a multiple of the Q4_0 block size 32"), "\($0)")
        }

        let directory = try temporaryDirectory()
        func expectWriteError(_ writer: GGUFWriter, _ problem: String, line: UInt = #line) {
            let url = directory.appendingPathComponent("out.gguf")
            XCTAssertThrowsError(try writer.write(to: url), line: line) { error in
                XCTAssertEqual((error as? FormatError)?.file, "out.gguf", line: line)
                XCTAssertTrue("\(error)".contains(problem), "\(error) should contain \(problem)", line: line)
            }
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [], line: line)
        }
        var shortBytes = GGUFWriter()
        shortBytes.addTensor("t", dimensions: [256, 2], type: .q6_K, bytes: [UInt8](repeating: 0, count: 210))
        expectWriteError(shortBytes, "tensor t: 210 bytes, but [256, 2] of Q6_K takes 420")
        var twice = GGUFWriter()
        twice.addTensor("t", dimensions: [1], type: .f32, bytes: [0, 0, 0, 0])
        twice.addTensor("t", dimensions: [1], type: .f32, bytes: [0, 0, 0, 0])
        expectWriteError(twice, "tensor t added twice")
        var fiveDims = GGUFWriter()
        fiveDims.addTensor("t", dimensions: [1, 1, 1, 1, 1], type: .f32, bytes: [0, 0, 0, 0])
        expectWriteError(fiveDims, "tensor t: 5 dimensions")
        var mixedArray = GGUFWriter()
        mixedArray.set("tokens", .array(.string, [.string("a"), .uint8(1)]))
        expectWriteError(mixedArray, "metadata tokens: an array of string holds a uint8")
        var conflicting = GGUFWriter(alignment: 64)
        conflicting.set("general.alignment", .uint32(32))
        expectWriteError(conflicting, "general.alignment is set to")
    }
}
