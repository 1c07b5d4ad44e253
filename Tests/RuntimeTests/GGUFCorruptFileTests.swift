import Foundation
import XCTest
@testable import Runtime

/// GGUF bytes assembled piece by piece, so a test can break exactly one piece.
struct RawGGUF {
    var magic = Array("GGUF".utf8)
    var version: [UInt8] = le(UInt32(3))
    /// nil: the real counts.
    var tensorCount: UInt64?
    var keyCount: UInt64?
    var entries: [[UInt8]] = []
    var infos: [[UInt8]] = []
    var alignment = 32
    var data: [UInt8] = []

    /// One metadata entry and two F32 tensors of 8 elements at offsets 0 and 32.
    static var valid: RawGGUF {
        var raw = RawGGUF()
        raw.entries = [kv("general.name", 8, str("x"))]
        raw.infos = [tensor("a", dims: [8], offset: 0), tensor("b", dims: [8], offset: 32)]
        raw.data = [UInt8](repeating: 0, count: 64)
        return raw
    }

    var bytes: [UInt8] {
        var out = magic + version
        out += Self.le(tensorCount ?? UInt64(infos.count)) + Self.le(keyCount ?? UInt64(entries.count))
        for entry in entries { out += entry }
        for info in infos { out += info }
        out += [UInt8](repeating: 0, count: (alignment - out.count % alignment) % alignment)
        return out + data
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func str(_ text: String) -> [UInt8] { le(UInt64(text.utf8.count)) + Array(text.utf8) }
    static func kv(_ key: String, _ type: UInt32, _ payload: [UInt8]) -> [UInt8] { str(key) + le(type) + payload }
    static func kv(key bytes: [UInt8], _ type: UInt32, _ payload: [UInt8]) -> [UInt8] { le(UInt64(bytes.count)) + bytes + le(type) + payload }
    static func array(_ elementType: UInt32, count: UInt64, _ elements: [UInt8] = []) -> [UInt8] { le(elementType) + le(count) + elements }
    static func tensor(_ name: String, dims: [UInt64], type: UInt32 = 0, offset: UInt64 = 0, dimsCount: UInt32? = nil) -> [UInt8] {
        str(name) + le(dimsCount ?? UInt32(dims.count)) + dims.flatMap { le($0) } + le(type) + le(offset)
    }
}

/// Broken GGUF files: each is a FormatError naming the file and saying what is wrong, quickly,
/// with no trap, hang or huge allocation.
final class GGUFCorruptFileTests: XCTestCase {
    lazy var directory: URL = try! temporaryDirectory()

    func expectFormatError(_ bytes: [UInt8], _ problem: String, line: UInt = #line) {
        let url = directory.appendingPathComponent("bad.gguf")
        XCTAssertNoThrow(try Data(bytes).write(to: url), line: line)
        expectFormatError(url, problem, line: line)
    }

    func expectFormatError(_ url: URL, _ problem: String, line: UInt = #line) {
        let start = Date()
        XCTAssertThrowsError(try GGUFFile(url: url), line: line) { error in
            guard let format = error as? FormatError else { return XCTFail("not a FormatError: \(error)", line: line) }
            XCTAssertEqual(format.file, url.lastPathComponent, line: line)
            XCTAssertTrue(format.problem.contains(problem), "\"\(format.problem)\" should contain \"\(problem)\"", line: line)
        }
        // Refused from the header, not after reading or allocating what it claims (GBs): a hang, not slowness.
        XCTAssertLessThan(Date().timeIntervalSince(start), 60, "refusing a bad file should not read it", line: line)
    }

    func broken(_ change: (inout RawGGUF) -> Void) -> [UInt8] {
        var raw = RawGGUF.valid
        change(&raw)
        return raw.bytes
    }

    func testTheIntactBaseReads() throws {
        let url = directory.appendingPathComponent("good.gguf")
        try Data(RawGGUF.valid.bytes).write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertEqual(file.tensorNames, ["a", "b"])
        XCTAssertEqual(file.metadata["general.name"]?.stringValue, "x")
    }

    // MARK: Truncation

    func testEveryTruncationOfAValidFileIsAFormatError() throws {
        let intact = try Fixtures.ggufFile("metadata.gguf")
        let whole = try [UInt8](Data(contentsOf: intact.url))
        // The padding after the last tensor is not needed; every cut before its end is.
        let end = intact.dataOffset + intact.tensors.values.map { $0.offset + $0.byteCount }.max()!
        XCTAssertEqual(end, 970)
        let url = directory.appendingPathComponent("cut.gguf")
        for length in 0..<end {
            try Data(whole[..<length]).write(to: url)
            XCTAssertThrowsError(try GGUFFile(url: url), "cut at \(length)") { error in
                let problem = (error as? FormatError)?.problem ?? "not a FormatError: \(error)"
                XCTAssertTrue(problem.contains("truncated") || (length == 0 && problem.contains("empty file")), "cut at \(length): \(problem)")
            }
        }
    }

    func testTruncatedAtSpecificPoints() {
        let whole = RawGGUF.valid.bytes
        expectFormatError([], "empty file (0 bytes)")
        expectFormatError(Array(whole[..<2]), "truncated: the magic at byte 0 needs 4 bytes, past the end of the file (2 bytes)")
        expectFormatError(Array(whole[..<6]), "truncated: the version at byte 4")
        expectFormatError(Array(whole[..<20]), "truncated: the metadata count at byte 16")
        expectFormatError(Array(whole[..<40]), "the header claims 2 tensors and 1 metadata entries, more than the 16 bytes after the header can hold")
        expectFormatError(Array(whole.dropLast(1)), "tensor b: bytes 32..<64 of the data section end past the end of the file")
    }

    // MARK: Header

    func testWrongMagic() {
        expectFormatError(broken { $0.magic = Array("GGML".utf8) }, "not a GGUF file: it starts with bytes 47 47 4d 4c, not \"GGUF\"")
    }

    func testVersion1() {
        expectFormatError(broken { $0.version = RawGGUF.le(UInt32(1)) }, "GGUF version 1 (before August 2023) is not supported")
    }

    func testBigEndian() {
        expectFormatError(broken { $0.version = [0, 0, 0, 3] }, "big-endian GGUF (version 3 stored big-endian) is not supported")
    }

    func testUnknownVersion() {
        expectFormatError(broken { $0.version = RawGGUF.le(UInt32(4)) }, "GGUF version 4 is not supported (versions 2 and 3 are)")
    }

    func testTensorCountOf2To63() {
        expectFormatError(broken { $0.tensorCount = 1 << 63 }, "the header claims 9223372036854775808 tensors and 1 metadata entries, more than")
    }

    func testMetadataCountPastTheEnd() {
        expectFormatError(broken { $0.keyCount = 1000 }, "the header claims 2 tensors and 1000 metadata entries")
        expectFormatError(broken { $0.keyCount = .max }, "18446744073709551615 metadata entries")
    }

    // MARK: Metadata

    func testAbsurdKeyLength() {
        expectFormatError(broken { $0.entries = [RawGGUF.le(UInt64(1) << 40) + Array("general.name".utf8)] },
                          "truncated: metadata key 0 at byte 24 claims 1099511627776 bytes, but only")
    }

    func testAbsurdStringLength() {
        expectFormatError(broken { $0.entries = [RawGGUF.kv("general.name", 8, RawGGUF.le(UInt64(1) << 40))] },
                          "truncated: metadata general.name at byte 48 claims 1099511627776 bytes")
    }

    func testAbsurdArrayLength() {
        expectFormatError(broken { $0.entries = [RawGGUF.kv("tokenizer.ggml.tokens", 9, RawGGUF.array(8, count: 1 << 62))] },
                          "truncated: array tokenizer.ggml.tokens at byte 57 claims 4611686018427387904 elements of string")
        expectFormatError(broken { $0.entries = [RawGGUF.kv("scores", 9, RawGGUF.array(6, count: .max))] },
                          "claims 18446744073709551615 elements of float32, more than")
    }

    func testUnknownValueType() {
        expectFormatError(broken { $0.entries = [RawGGUF.kv("general.name", 13, [0])] },
                          "metadata general.name: unknown value type 13 (GGUF has types 0 to 12)")
        expectFormatError(broken { $0.entries = [RawGGUF.kv("list", 9, RawGGUF.array(99, count: 1))] },
                          "metadata list: array of unknown value type 99")
    }

    func testArraysNestedTooDeep() {
        var payload = RawGGUF.array(0, count: 0)
        for _ in 0..<GGUFFile.maxArrayNesting { payload = RawGGUF.array(9, count: 1, payload) }
        expectFormatError(broken { $0.entries = [RawGGUF.kv("deep", 9, payload)] }, "arrays nested deeper than 8 levels")
    }

    func testMetadataValuesPastTheCap() throws {
        let url = directory.appendingPathComponent("many.gguf")
        try Data(broken { $0.entries = [RawGGUF.kv("tokens", 9, RawGGUF.array(0, count: 20, [UInt8](repeating: 7, count: 20)))] }).write(to: url)
        XCTAssertNoThrow(try GGUFFile(url: url, maxMetadataValues: 21))
        XCTAssertThrowsError(try GGUFFile(url: url, maxMetadataValues: 20)) {
            XCTAssertTrue("\($0)".contains("metadata tokens: more than 20 metadata values in all"), "\($0)")
        }
    }

    func testDuplicateKey() {
        expectFormatError(broken { $0.entries += [RawGGUF.kv("general.name", 4, RawGGUF.le(UInt32(1)))] },
                          "metadata key general.name appears twice")
    }

    func testKeyNotUTF8AndEmptyKey() {
        expectFormatError(broken { $0.entries = [RawGGUF.kv(key: [0x67, 0xFF], 0, [1])] }, "metadata key 0 is not valid UTF-8")
        expectFormatError(broken { $0.entries = [RawGGUF.kv("", 0, [1])] }, "metadata key 0 is empty")
    }

    func testBadAlignment() {
        expectFormatError(broken { $0.entries += [RawGGUF.kv("general.alignment", 4, RawGGUF.le(UInt32(48)))] },
                          "general.alignment is 48, not a power of two")
        expectFormatError(broken { $0.entries += [RawGGUF.kv("general.alignment", 4, RawGGUF.le(UInt32(0)))] },
                          "general.alignment is 0, not a power of two")
        expectFormatError(broken { $0.entries += [RawGGUF.kv("general.alignment", 10, RawGGUF.le(UInt64(64)))] },
                          "general.alignment must be a uint32, found uint64")
    }

    // MARK: Tensor infos

    func testUnknownTensorType() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("blk.0.attn_q.weight", dims: [8], type: 12345) },
                          "tensor blk.0.attn_q.weight: type 12345 is not a ggml type")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("old", dims: [32], type: 4) },
                          "tensor old: type 4 (Q4_2, removed from ggml)")
    }

    func testDimensionCounts() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [], dimsCount: 0) },
                          "tensor a: 0 dimensions; ggml tensors have 1 to 4")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [8, 1, 1, 1, 1]) },
                          "tensor a: 5 dimensions; ggml tensors have 1 to 4")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [8], dimsCount: .max) },
                          "tensor a: 4294967295 dimensions")
    }

    func testZeroDimension() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [8, 0]) }, "tensor a: dimension 1 is 0")
    }

    func testHugeDimensions() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [1 << 32, 1 << 32]) },
                          "tensor a: dimensions [4294967296, 4294967296] multiply past")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [(1 << 63) + 1]) },
                          "tensor a: dimension 0 is 9223372036854775809, too large")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [1 << 62]) },
                          "tensor a: [4611686018427387904] of F32 is more bytes than a file can hold")
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [1 << 40]) },
                          "tensor a: bytes 0..<4398046511104 of the data section end past the end of the file")
    }

    func testRowLengthNotAMultipleOfTheBlockSize() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.tensor("a", dims: [100, 2], type: 12) },
                          "tensor a: row length ne0 = 100 is not a multiple of the Q4_K block size 256")
    }

    func testMisalignedOffset() {
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("b", dims: [8], offset: 36) },
                          "tensor b: offset 36 is not a multiple of the alignment 32")
    }

    func testOffsetPastTheEnd() {
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("b", dims: [8], offset: 4096) },
                          "tensor b: bytes 4096..<4128 of the data section end past the end of the file (the data section starting at byte 128 holds 64 bytes)")
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("b", dims: [8], offset: .max) },
                          "tensor b: offset 18446744073709551615 is past the end of the file")
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("b", dims: [8], offset: UInt64(Int.max) - 31) },
                          "tensor b: bytes from 9223372036854775776 of the data section end past the end of the file")
    }

    func testOverlappingTensors() {
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("b", dims: [16], offset: 0); $0.data += [UInt8](repeating: 0, count: 64) },
                          "tensors a (bytes 0..<32) and b (bytes 0..<64) overlap")
    }

    func testDuplicateTensorName() {
        expectFormatError(broken { $0.infos[1] = RawGGUF.tensor("a", dims: [8], offset: 32) }, "tensor a appears twice")
    }

    func testTensorNameNotUTF8() {
        expectFormatError(broken { $0.infos[0] = RawGGUF.le(UInt64(2)) + [0xC3, 0x28] + RawGGUF.le(UInt32(1)) + RawGGUF.le(UInt64(8)) + RawGGUF.le(UInt32(0)) + RawGGUF.le(UInt64(0)) },
                          "the name of tensor 0 is not valid UTF-8")
    }

    // MARK: Not a regular file

    func testFIFOIsRefusedWithoutHanging() throws {
        let url = directory.appendingPathComponent("pipe.gguf")
        XCTAssertEqual(mkfifo(url.path, 0o600), 0)
        expectFormatError(url, "is a FIFO, not a regular GGUF file")
    }

    func testDirectoryDeviceAndMissingFile() throws {
        let folder = directory.appendingPathComponent("model.gguf")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        expectFormatError(folder, "is a directory, not a regular GGUF file")
        expectFormatError(URL(fileURLWithPath: "/dev/null"), "is a character device, not a regular GGUF file")
        expectFormatError(directory.appendingPathComponent("absent.gguf"), "cannot read")
    }
}
