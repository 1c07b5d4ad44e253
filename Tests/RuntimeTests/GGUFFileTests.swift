import Foundation
import XCTest
@testable import Runtime

extension Fixtures {
    static let gguf = root.appendingPathComponent("gguf")

    static func ggufFile(_ name: String) throws -> GGUFFile {
        try GGUFFile(url: gguf.appendingPathComponent(name))
    }
}

extension GGUFFile {
    /// A whole tensor as fp32 (test helper; throws for types without a decoder).
    func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw FormatError(file: fileName, "no tensor \(name)") }
        var out = [Float](repeating: .nan, count: info.elementCount)
        try out.withUnsafeMutableBufferPointer { try dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
        return out
    }
}

/// Reading gguf-py's files: every metadata value type, the tensor table, and every dequantizable
/// type against gguf-py's own dequantization, bit for bit.
final class GGUFFileTests: XCTestCase {
    func testEveryDequantizableTypeMatchesGGUFPyBitForBit() throws {
        let file = try Fixtures.ggufFile("types.gguf")
        for type in GGUFTensorType.allCases where type.isDequantizable {
            guard let q = file.tensors["\(type.name).q"] else { XCTFail("types.gguf has no \(type.name).q"); continue }
            XCTAssertEqual(q.type, type)
            XCTAssertEqual(q.dimensions, [256, 2])
            XCTAssertEqual(q.byteCount, 512 / type.blockSize * type.typeSize)
            let decoded = try file.floats("\(type.name).q")
            let reference = try file.floats("\(type.name).ref")
            let mismatches = zip(decoded, reference).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
            XCTAssertTrue(mismatches.isEmpty, "\(type.name): \(mismatches.count) elements differ, first at \(mismatches.first.map { "\($0.offset): \($0.element.0) vs \($0.element.1)" } ?? "")")
            XCTAssertTrue(reference.contains { $0 != 0 }, "\(type.name): the reference is all zero, the test would prove little")
        }
    }

    func testDequantizingOneRowOfBlocksStartsMidTensor() throws {
        let file = try Fixtures.ggufFile("types.gguf")
        for name in ["Q4_K", "Q6_K", "Q5_0", "IQ4_XS", "BF16"] {
            let q = try XCTUnwrap(file.tensors["\(name).q"])
            var row = [Float](repeating: .nan, count: 256)
            try row.withUnsafeMutableBufferPointer { try file.dequantize(q, elements: 256..<512, into: $0.baseAddress!) }
            XCTAssertEqual(row.map(\.bitPattern), Array(try file.floats("\(name).ref")[256...]).map(\.bitPattern), name)
        }
    }

    func testTypesWithoutADecoderAreAFormatErrorNamingTensorAndType() throws {
        let directory = try temporaryDirectory()
        let url = directory.appendingPathComponent("iq.gguf")
        var writer = GGUFWriter()
        writer.addTensor("blk.0.ffn_down.weight", dimensions: [256], type: .iq2_XXS, bytes: [UInt8](repeating: 0, count: 66))
        try writer.write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertThrowsError(try file.floats("blk.0.ffn_down.weight")) { error in
            XCTAssertEqual((error as? FormatError)?.file, "iq.gguf")
            XCTAssertTrue("\(error)".contains("tensor blk.0.ffn_down.weight: type IQ2_XXS cannot be dequantized"), "\(error)")
        }
    }

    func testMetadataValuesOfEveryType() throws {
        let file = try Fixtures.ggufFile("metadata.gguf")
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.metadataKeys.first, "general.architecture")
        XCTAssertEqual(file.metadata["general.architecture"]?.stringValue, "fixture")
        let m = file.metadata
        XCTAssertEqual(m["test.uint8"], .uint8(200))
        XCTAssertEqual(m["test.int8"], .int8(-100))
        XCTAssertEqual(m["test.uint16"], .uint16(60000))
        XCTAssertEqual(m["test.int16"], .int16(-30000))
        XCTAssertEqual(m["test.uint32"], .uint32(4_000_000_000))
        XCTAssertEqual(m["test.int32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.uint64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(m["test.int64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(m["test.float32"], .float32(0.1))
        XCTAssertEqual(m["test.float64"], .float64(-2.5e-300))
        XCTAssertEqual(m["test.bool"], .bool(true))
        XCTAssertEqual(m["test.string"]?.stringValue, "héllo, GGUF")
        XCTAssertEqual(m["test.bytes"], .string([0xFF, 0xFE] + Array(" not utf-8 ".utf8) + [0xC3]))
        XCTAssertEqual(m["test.array.uint16"], .array(.uint16, [.uint16(1), .uint16(2), .uint16(65535)]))
        XCTAssertEqual(m["test.array.float32"], .array(.float32, [.float32(0.5), .float32(-1.25)]))
        XCTAssertEqual(m["test.array.bool"], .array(.bool, [.bool(true), .bool(false), .bool(true)]))
        XCTAssertEqual(m["test.array.string"], .array(.string, [.string("a"), .string(""), .string("ü")]))
        XCTAssertEqual(m["test.array.nested"], .array(.array, [
            .array(.int32, [.int32(1), .int32(2)]),
            .array(.int32, [.int32(3)]),
            .array(.array, [.array(.int32, [.int32(4)])]),
        ]))
        XCTAssertEqual(file.metadataKeys.count, m.count)
        XCTAssertEqual(Array(file.metadataKeys.prefix(4)), ["general.architecture", "general.alignment", "test.uint8", "test.int8"])
    }

    func testAlignmentAndTensorTable() throws {
        let file = try Fixtures.ggufFile("metadata.gguf")
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file.tensorNames, ["small", "after"])
        let small = try XCTUnwrap(file.tensors["small"])
        XCTAssertEqual(small.dimensions, [3, 2], "ne0 (the row length) first")
        XCTAssertEqual(small.type, .f32)
        XCTAssertEqual(small.elementCount, 6)
        XCTAssertEqual(small.byteCount, 24)
        XCTAssertEqual(try file.floats("small"), [0, 1, 2, 3, 4, 5])
        let after = try XCTUnwrap(file.tensors["after"])
        XCTAssertEqual(after.offset, 64, "the next multiple of 64 after 24 bytes")
        XCTAssertEqual(after.type, .f16)
        XCTAssertEqual(try file.floats("after"), [Float](repeating: 7, count: 5))
        XCTAssertEqual(file.bytes(of: after).count, 10)
    }

    func testVersion2() throws {
        let file = try Fixtures.ggufFile("v2.gguf")
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.metadata["test.answer"], .uint32(42))
        XCTAssertEqual(try file.floats("x"), [1, -2, 3.5, 0.25])
    }

    func testTensorTypeTable() {
        XCTAssertEqual(GGUFTensorType(rawValue: 12)?.name, "Q4_K")
        XCTAssertEqual(GGUFTensorType(name: "BF16"), .bf16)
        XCTAssertEqual(GGUFTensorType.bf16.rawValue, 30)
        XCTAssertEqual(GGUFTensorType.q6_K.typeSize, 210)
        XCTAssertEqual(GGUFTensorType.q4_K.blockSize, 256)
        XCTAssertNil(GGUFTensorType(rawValue: 4))
        XCTAssertEqual(GGUFTensorType.describe(rawValue: 4), "4 (Q4_2, removed from ggml)")
        XCTAssertEqual(GGUFTensorType.describe(rawValue: 12345), "12345 is not a ggml type")
        XCTAssertEqual(Set(GGUFTensorType.allCases.map(\.name)).count, GGUFTensorType.allCases.count)
    }
}

/// Dequantization is a plain loop over blocks with no allocation: a 4M-element tensor of each
/// common type decodes well within a debug build's budget (a release build loads 135M parameters
/// in well under a second).
final class GGUFDequantizationPerformanceTests: XCTestCase {
    func testFourMillionElementsPerType() {
        let count = 4 << 20
        var out = [Float](repeating: 0, count: count)
        for type in [GGUFTensorType.q4_K, .q6_K, .q8_0, .f16] {
            // 0x1111 as an fp16 scale is small and finite; only speed is measured here.
            let bytes = [UInt8](repeating: 0x11, count: count / type.blockSize * type.typeSize)
            let start = Date()
            bytes.withUnsafeBytes { raw in
                out.withUnsafeMutableBufferPointer { GGUFDequantization.dequantize(type, from: raw.baseAddress!, count: count, into: $0.baseAddress!) }
            }
            let seconds = Date().timeIntervalSince(start)
            print("\(type.name): \(count) elements in \(String(format: "%.3f", seconds)) s")
            XCTAssertLessThan(seconds, 60, type.name)  // a hang (4M elements), not a speed bound
        }
    }
}
