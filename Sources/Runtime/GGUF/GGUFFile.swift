import Foundation

/// One GGUF file (ggml's docs/gguf.md, versions 2 and 3, little-endian), memory-mapped and
/// validated in full before any tensor is touched, so a bad file is one FormatError, never a trap,
/// a hang or a huge allocation. Tensors are then lazy views into the mapping.
///
/// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata
/// (string key, u32 value type, value); the tensor infos (string name, u32 dims count, u64 dims
/// ne0 first, u32 ggml type, u64 offset into the data); padding to `alignment`; the data.
/// Strings are a u64 length and that many bytes. Every count and length read from the file is
/// checked against the bytes left before anything is allocated for it.
public final class GGUFFile: @unchecked Sendable {
    /// Where one tensor's bytes are and what they hold. For a matrix, `dimensions` is
    /// [columns, rows]: ggml lists ne0 (the contiguous row length) first, the reverse of numpy.
    public struct TensorInfo: Sendable {
        public let name: String
        public let dimensions: [Int]
        public let type: GGUFTensorType
        /// Relative to the file's `dataOffset`.
        public let offset: Int
        public let elementCount: Int
        public let byteCount: Int
    }

    /// ggml's GGML_MAX_DIMS.
    public static let maxDimensions = 4
    /// Arrays of arrays are legal; deeper than this is a corrupt or hostile file, not a model.
    public static let maxArrayNesting = 8
    /// Each metadata value costs tens of bytes in memory however few it takes on disk, so their
    /// number is capped (a 256k-token vocabulary with scores, types and merges is about 1M).
    public static let maxMetadataValues = 1 << 22
    public static let defaultAlignment = 32

    public let url: URL
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// In file order.
    public let metadataKeys: [String]
    /// In file order.
    public let tensorNames: [String]
    public let tensors: [String: TensorInfo]
    /// general.alignment, or 32.
    public let alignment: Int
    /// Where the tensor data section starts.
    public let dataOffset: Int
    public let fileSize: Int
    private let mapping: UnsafeRawPointer
    private let mappedLength: Int

    public var fileName: String { url.lastPathComponent }

    public convenience init(url: URL) throws {
        try self.init(url: url, maxMetadataValues: Self.maxMetadataValues)
    }

    /// `maxMetadataValues` is a parameter so tests can reach it with a small file.
    init(url: URL, maxMetadataValues: Int) throws {
        self.url = url
        let file = url.lastPathComponent
        let (fd, size) = try RegularFile.open(url, kind: "GGUF file")
        defer { close(fd) }
        guard size > 0 else { throw FormatError(file: file, "empty file (0 bytes); a GGUF file starts with the magic \"GGUF\"") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw FormatError(file: file, "cannot memory-map: \(String(cString: strerror(errno)))")
        }
        do {
            var parser = Parser(reader: Reader(base: UnsafeRawPointer(map), size: size, file: file), maxValues: maxMetadataValues)
            try parser.parse()
            version = parser.version
            metadata = parser.metadata
            metadataKeys = parser.metadataKeys
            tensorNames = parser.tensorNames
            tensors = parser.tensors
            alignment = parser.alignment
            dataOffset = parser.dataOffset
        } catch {
            munmap(map, size)
            throw error
        }
        fileSize = size
        mapping = UnsafeRawPointer(map)
        mappedLength = size
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: mapping), mappedLength) }


    /// The raw bytes of a tensor of this file, valid as long as this object lives.
    public func bytes(of tensor: TensorInfo) -> UnsafeRawBufferPointer {
        let dataBytes = mappedLength - dataOffset
        precondition(tensor.offset >= 0 && tensor.offset <= dataBytes && tensor.byteCount <= dataBytes - tensor.offset,
                     "tensor \(tensor.name) is not a tensor of \(fileName)")
        return UnsafeRawBufferPointer(start: mapping + dataOffset + tensor.offset, count: tensor.byteCount)
    }

    /// Decodes `elements` of `tensor` (flat, ne0 fastest; both ends on block boundaries) into
    /// fp32 at `into`. FormatError when ggml's type for it has no decoder here.
    public func dequantize(_ tensor: TensorInfo, elements: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws {
        let type = tensor.type
        guard type.isDequantizable else {
            let supported = GGUFTensorType.allCases.filter(\.isDequantizable).map(\.name).joined(separator: ", ")
            throw FormatError(file: fileName, "tensor \(tensor.name): type \(type.name) cannot be dequantized (supported: \(supported))")
        }
        let block = type.blockSize
        precondition(elements.lowerBound >= 0 && elements.upperBound <= tensor.elementCount,
                     "elements \(elements) outside tensor \(tensor.name) of \(tensor.elementCount)")
        precondition(elements.lowerBound % block == 0 && elements.upperBound % block == 0,
                     "elements \(elements) of \(tensor.name) do not fall on \(type.name) block boundaries (\(block))")
        guard !elements.isEmpty, let base = bytes(of: tensor).baseAddress else { return }
        GGUFDequantization.dequantize(type, from: base + elements.lowerBound / block * type.typeSize,
                                      count: elements.count, into: destination)
    }
}

// MARK: Reading

extension GGUFFile {
    /// Bounds-checked little-endian reads over the mapping; each failure says what was being read.
    struct Reader {
        let base: UnsafeRawPointer
        let size: Int
        let file: String
        var offset = 0

        var remaining: Int { size - offset }

        func error(_ problem: String) -> FormatError { FormatError(file: file, problem) }

        /// Consumes `count` bytes and returns where they start.
        mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> Int {
            guard count <= remaining else {
                throw error("truncated: \(what()) at byte \(offset) needs \(count) bytes, past the end of the file (\(size) bytes)")
            }
            defer { offset += count }
            return offset
        }

        mutating func u8(_ what: @autoclosure () -> String) throws -> UInt8 {
            base.load(fromByteOffset: try take(1, what()), as: UInt8.self)
        }

        mutating func u16(_ what: @autoclosure () -> String) throws -> UInt16 {
            UInt16(littleEndian: base.loadUnaligned(fromByteOffset: try take(2, what()), as: UInt16.self))
        }

        mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 {
            UInt32(littleEndian: base.loadUnaligned(fromByteOffset: try take(4, what()), as: UInt32.self))
        }

        mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 {
            UInt64(littleEndian: base.loadUnaligned(fromByteOffset: try take(8, what()), as: UInt64.self))
        }

        /// A u64 length and that many bytes; the length is checked against the file first.
        mutating func string(_ what: @autoclosure () -> String) throws -> [UInt8] {
            let start = offset
            let length = try u64("the length of \(what())")
            guard length <= UInt64(remaining) else {
                throw error("truncated: \(what()) at byte \(start) claims \(length) bytes, but only \(remaining) bytes follow")
            }
            let at = try take(Int(length), what())
            return Array(UnsafeRawBufferPointer(start: base + at, count: Int(length)))
        }

        /// A string that must be UTF-8 (keys and tensor names become Swift strings, and two
        /// invalid byte strings must not decode to the same name).
        mutating func utf8(_ what: @autoclosure () -> String) throws -> String {
            let bytes = try string(what())
            guard let text = String(bytes: bytes, encoding: .utf8) else { throw error("\(what()) is not valid UTF-8") }
            return text
        }
    }

    /// The whole header: metadata, tensor infos and the layout of the data section.
    struct Parser {
        var reader: Reader
        let maxValues: Int
        var version: UInt32 = 0
        var metadata: [String: GGUFValue] = [:]
        var metadataKeys: [String] = []
        var tensorNames: [String] = []
        var tensors: [String: TensorInfo] = [:]
        var alignment = GGUFFile.defaultAlignment
        var dataOffset = 0
        /// Metadata values read so far, against `maxValues`.
        var valueCount = 0

        var file: String { reader.file }
        func error(_ problem: String) -> FormatError { reader.error(problem) }

        /// Smallest encodings, to bound counts by the bytes left: a key (8-byte length) with a
        /// type (4) and a one-byte value; a tensor info with an empty name, one dim, type, offset.
        static let minMetadataBytes = 8 + 4 + 1
        static let minTensorInfoBytes = 8 + 4 + 8 + 4 + 8

        mutating func parse() throws {
            let magicAt = try reader.take(4, "the magic")
            let magic = Array(UnsafeRawBufferPointer(start: reader.base + magicAt, count: 4))
            guard magic == Array("GGUF".utf8) else {
                let shown = magic.map { String(format: "%02x", $0) }.joined(separator: " ")
                throw error("not a GGUF file: it starts with bytes \(shown), not \"GGUF\"")
            }
            version = try reader.u32("the version")
            switch version {
            case 2, 3: break
            case 1:
                throw error("GGUF version 1 (before August 2023) is not supported; convert the model again with a current llama.cpp")
            case let v where v > 0xFFFF && (1...3).contains(v.byteSwapped):
                throw error("big-endian GGUF (version \(v.byteSwapped) stored big-endian) is not supported; only little-endian files can be read")
            default:
                throw error("GGUF version \(version) is not supported (versions 2 and 3 are)")
            }
            let tensorCount = try reader.u64("the tensor count")
            let keyCount = try reader.u64("the metadata count")
            // Before any loop runs: can the rest of the file hold that many entries at all?
            let (tensorBytes, o1) = tensorCount.multipliedReportingOverflow(by: UInt64(Self.minTensorInfoBytes))
            let (keyBytes, o2) = keyCount.multipliedReportingOverflow(by: UInt64(Self.minMetadataBytes))
            let (needed, o3) = tensorBytes.addingReportingOverflow(keyBytes)
            guard !o1, !o2, !o3, needed <= UInt64(reader.remaining) else {
                throw error("the header claims \(tensorCount) tensors and \(keyCount) metadata entries, more than the \(reader.remaining) bytes after the header can hold; the file is truncated or corrupt")
            }
            for index in 0..<Int(keyCount) { try metadataEntry(index) }
            try readAlignment()
            for index in 0..<Int(tensorCount) { try tensorInfo(index) }
            try layOutData()
        }

        mutating func metadataEntry(_ index: Int) throws {
            let key = try reader.utf8("metadata key \(index)")
            guard !key.isEmpty else { throw error("metadata key \(index) is empty") }
            guard metadata[key] == nil else { throw error("metadata key \(key) appears twice") }
            let typeCode = try reader.u32("the value type of \(key)")
            let value = try self.value(typeCode, depth: 0, key)
            metadata[key] = value
            metadataKeys.append(key)
        }

        /// Bytes the smallest value of a type takes in the file (a string's length, an array's
        /// element type and count).
        static func minBytes(_ type: GGUFValue.GGUFValueType) -> Int {
            switch type {
            case .uint8, .int8, .bool: return 1
            case .uint16, .int16: return 2
            case .uint32, .int32, .float32: return 4
            case .uint64, .int64, .float64, .string: return 8
            case .array: return 12
            }
        }

        mutating func value(_ code: UInt32, depth: Int, _ key: String) throws -> GGUFValue {
            guard let type = GGUFValue.GGUFValueType(rawValue: code) else {
                throw error("metadata \(key): unknown value type \(code) (GGUF has types 0 to 12)")
            }
            valueCount += 1
            guard valueCount <= maxValues else {
                throw error("metadata \(key): more than \(maxValues) metadata values in all, more than any model needs")
            }
            switch type {
            case .uint8: return .uint8(try reader.u8("metadata \(key)"))
            case .int8: return .int8(Int8(bitPattern: try reader.u8("metadata \(key)")))
            case .uint16: return .uint16(try reader.u16("metadata \(key)"))
            case .int16: return .int16(Int16(bitPattern: try reader.u16("metadata \(key)")))
            case .uint32: return .uint32(try reader.u32("metadata \(key)"))
            case .int32: return .int32(Int32(bitPattern: try reader.u32("metadata \(key)")))
            case .float32: return .float32(Float(bitPattern: try reader.u32("metadata \(key)")))
            case .uint64: return .uint64(try reader.u64("metadata \(key)"))
            case .int64: return .int64(Int64(bitPattern: try reader.u64("metadata \(key)")))
            case .float64: return .float64(Double(bitPattern: try reader.u64("metadata \(key)")))
            case .bool: return .bool(try reader.u8("metadata \(key)") != 0)
            case .string: return .string(try reader.string("metadata \(key)"))
            case .array: return try array(depth: depth, key)
            }
        }

        mutating func array(depth: Int, _ key: String) throws -> GGUFValue {
            let start = reader.offset
            let code = try reader.u32("the element type of array \(key)")
            guard let elementType = GGUFValue.GGUFValueType(rawValue: code) else {
                throw error("metadata \(key): array of unknown value type \(code) (GGUF has types 0 to 12)")
            }
            if elementType == .array {
                guard depth + 1 < GGUFFile.maxArrayNesting else {
                    throw error("metadata \(key): arrays nested deeper than \(GGUFFile.maxArrayNesting) levels")
                }
            }
            let count = try reader.u64("the length of array \(key)")
            let (needed, overflow) = count.multipliedReportingOverflow(by: UInt64(Self.minBytes(elementType)))
            guard !overflow, needed <= UInt64(reader.remaining) else {
                throw error("truncated: array \(key) at byte \(start) claims \(count) elements of \(elementType), more than the \(reader.remaining) bytes left can hold")
            }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for i in 0..<Int(count) {
                elements.append(try value(code, depth: depth + 1, elementType == .array ? "\(key)[\(i)]" : key))
            }
            return .array(elementType, elements)
        }

        mutating func readAlignment() throws {
            guard let value = metadata["general.alignment"] else { return }
            guard case .uint32(let raw) = value else {
                throw error("general.alignment must be a uint32, found \(value.type)")
            }
            guard raw > 0, raw & (raw - 1) == 0 else {
                throw error("general.alignment is \(raw), not a power of two")
            }
            alignment = Int(raw)
        }

        mutating func tensorInfo(_ index: Int) throws {
            let name = try reader.utf8("the name of tensor \(index)")
            guard tensors[name] == nil else { throw error("tensor \(name) appears twice") }
            let dimsCount = try reader.u32("the dimension count of tensor \(name)")
            guard (1...UInt32(GGUFFile.maxDimensions)).contains(dimsCount) else {
                throw error("tensor \(name): \(dimsCount) dimensions; ggml tensors have 1 to \(GGUFFile.maxDimensions)")
            }
            var dimensions: [Int] = []
            var elementCount = 1
            for d in 0..<Int(dimsCount) {
                let raw = try reader.u64("dimension \(d) of tensor \(name)")
                guard raw >= 1 else { throw error("tensor \(name): dimension \(d) is 0") }
                guard raw <= UInt64(Int.max) else { throw error("tensor \(name): dimension \(d) is \(raw), too large") }
                dimensions.append(Int(raw))
                let (product, overflow) = elementCount.multipliedReportingOverflow(by: Int(raw))
                guard !overflow else {
                    throw error("tensor \(name): dimensions \(dimensions) multiply past \(Int.max) elements")
                }
                elementCount = product
            }
            let code = try reader.u32("the type of tensor \(name)")
            guard let type = GGUFTensorType(rawValue: code) else {
                throw error("tensor \(name): type \(GGUFTensorType.describe(rawValue: code))")
            }
            guard dimensions[0] % type.blockSize == 0 else {
                throw error("tensor \(name): row length ne0 = \(dimensions[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
            }
            let (byteCount, overflow) = (elementCount / type.blockSize).multipliedReportingOverflow(by: type.typeSize)
            guard !overflow else { throw error("tensor \(name): \(dimensions) of \(type.name) is more bytes than a file can hold") }
            let rawOffset = try reader.u64("the offset of tensor \(name)")
            guard rawOffset <= UInt64(Int.max) else { throw error("tensor \(name): offset \(rawOffset) is past the end of the file") }
            tensorNames.append(name)
            tensors[name] = TensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(rawOffset),
                                       elementCount: elementCount, byteCount: byteCount)
        }

        /// The data section starts at the first multiple of `alignment` after the tensor infos;
        /// every tensor must be aligned, inside the file, and share no byte with another.
        mutating func layOutData() throws {
            let infosEnd = reader.offset
            let (padded, overflow) = infosEnd.addingReportingOverflow(alignment - 1)
            guard !overflow else { throw error("general.alignment \(alignment) is too large") }
            dataOffset = padded / alignment * alignment
            let dataBytes = max(0, reader.size - dataOffset)
            for name in tensorNames {
                guard let info = tensors[name] else { continue }
                guard info.offset % alignment == 0 else {
                    throw error("tensor \(name): offset \(info.offset) is not a multiple of the alignment \(alignment)")
                }
                guard info.offset <= dataBytes, info.byteCount <= dataBytes - info.offset else {
                    let (end, endOverflow) = info.offset.addingReportingOverflow(info.byteCount)
                    let range = endOverflow ? "from \(info.offset)" : "\(info.offset)..<\(end)"
                    throw error("tensor \(name): bytes \(range) of the data section end past the end of the file (the data section starting at byte \(dataOffset) holds \(dataBytes) bytes); the file is truncated or corrupt")
                }
            }
            let sorted = tensorNames.compactMap { tensors[$0] }.sorted { $0.offset < $1.offset }
            for (a, b) in zip(sorted, sorted.dropFirst()) where b.offset < a.offset + a.byteCount {
                throw error("tensors \(a.name) (bytes \(a.offset)..<\(a.offset + a.byteCount)) and \(b.name) (bytes \(b.offset)..<\(b.offset + b.byteCount)) overlap")
            }
        }
    }
}
