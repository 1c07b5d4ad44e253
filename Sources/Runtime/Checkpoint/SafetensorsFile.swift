import Foundation

/// One safetensors file, memory-mapped and validated in full before any tensor is touched:
/// the header length, the header JSON, and every tensor's dtype, shape and byte range (inside the
/// data, matching dtype × shape, no two overlapping). Tensors are then views into the mapping.
///
/// Layout: 8 bytes little-endian header length N, N bytes of JSON
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`), then the
/// data; offsets are relative to the start of the data.
public final class SafetensorsFile: @unchecked Sendable {
    public struct TensorInfo: Equatable, Sendable {
        public let name: String
        public let dtype: TensorDType
        public let shape: [Int]
        /// Offsets into the data section.
        public let dataRange: Range<Int>
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// A header larger than this is not a real header (transformers' own limit is 100 MB).
    public static let maxHeaderBytes = 100 << 20

    public let url: URL
    public let tensors: [String: TensorInfo]
    public let metadata: [String: String]
    private let mapping: UnsafeRawPointer
    private let mappedLength: Int
    private let dataStart: Int

    public var fileName: String { url.lastPathComponent }

    public init(url: URL) throws {
        self.url = url
        let file = url.lastPathComponent
        let (fd, length) = try RegularFile.open(url, kind: "safetensors file")
        defer { close(fd) }
        guard length >= 8 else { throw FormatError(file: file, "truncated: \(length) bytes, shorter than the 8-byte header length") }
        guard let map = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw FormatError(file: file, "cannot memory-map: \(String(cString: strerror(errno)))")
        }
        do {
            let headerLength = UInt64(littleEndian: map.loadUnaligned(as: UInt64.self))
            guard headerLength <= UInt64(Self.maxHeaderBytes) else {
                throw FormatError(file: file, "header length \(headerLength) exceeds the limit of \(Self.maxHeaderBytes) bytes")
            }
            guard 8 + Int(headerLength) <= length else {
                throw FormatError(file: file, "header length \(headerLength) runs past the end of the file (\(length) bytes)")
            }
            let headerBytes = Data(bytes: map + 8, count: Int(headerLength))
            let dataLength = length - 8 - Int(headerLength)
            (tensors, metadata) = try Self.parseHeader(headerBytes, dataLength: dataLength, file: file)
        } catch {
            munmap(map, length)
            throw error
        }
        mapping = UnsafeRawPointer(map)
        mappedLength = length
        dataStart = 8 + Int(UInt64(littleEndian: map.loadUnaligned(as: UInt64.self)))
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: mapping), mappedLength) }

    /// The raw bytes of a tensor, valid as long as this file object lives.
    public func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping + dataStart + info.dataRange.lowerBound, count: info.dataRange.count)
    }

    /// The header as JSONDecoder reads it: every member is a tensor entry except `__metadata__`.
    private struct Header: Decodable {
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        /// A tensor entry, kept loose so each problem gets its own message.
        struct Entry: Decodable {
            var dtype: String?
            var shape: [Int]?
            var data_offsets: [Int]?
        }
        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            for key in container.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try container.decode([String: String].self, forKey: key)
                } else {
                    entries[key.stringValue] = try container.decode(Entry.self, forKey: key)
                }
            }
        }
    }

    static func parseHeader(_ header: Data, dataLength: Int, file: String) throws -> ([String: TensorInfo], [String: String]) {
        let parsed: Header
        do {
            parsed = try JSONDecoder().decode(Header.self, from: header)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw FormatError(file: file, "the header's \(path) has the wrong type (shapes and offsets are lists of integers, __metadata__ maps strings to strings)")
        } catch {
            throw FormatError(file: file, "the header is not a valid JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        for (name, entry) in parsed.entries {
            tensors[name] = try tensorInfo(name, entry, dataLength: dataLength, file: file)
        }
        // No two tensors may share bytes.
        let sorted = tensors.values.filter { !$0.dataRange.isEmpty }.sorted { $0.dataRange.lowerBound < $1.dataRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.dataRange.lowerBound < a.dataRange.upperBound {
            throw FormatError(file: file, "tensors \(a.name) (bytes \(a.dataRange)) and \(b.name) (bytes \(b.dataRange)) overlap")
        }
        return (tensors, parsed.metadata)
    }

    private static func tensorInfo(_ name: String, _ entry: Header.Entry, dataLength: Int, file: String) throws -> TensorInfo {
        guard let dtypeName = entry.dtype else { throw FormatError(file: file, "tensor \(name): no dtype") }
        guard let dtype = TensorDType(rawValue: dtypeName) else {
            throw FormatError(file: file, "tensor \(name): unknown dtype '\(dtypeName)'")
        }
        guard let shape = entry.shape else { throw FormatError(file: file, "tensor \(name): no shape") }
        var count = 1
        for n in shape {
            guard n >= 0 else { throw FormatError(file: file, "tensor \(name): shape \(shape) has a negative dimension") }
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { throw FormatError(file: file, "tensor \(name): shape \(shape) is too large") }
            count = product
        }
        guard let offsets = entry.data_offsets, offsets.count == 2, offsets[0] >= 0, offsets[1] >= offsets[0] else {
            throw FormatError(file: file, "tensor \(name): data_offsets must be two integers [begin, end] with 0 <= begin <= end")
        }
        let (begin, end) = (offsets[0], offsets[1])
        let (expected, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, end - begin == expected else {
            throw FormatError(file: file, "tensor \(name): \(end - begin) bytes for shape \(shape) of \(dtype.rawValue), which needs \(expected)")
        }
        guard end <= dataLength else {
            throw FormatError(file: file, "tensor \(name): byte range \(begin)..<\(end) ends past the end of the data (\(dataLength) bytes); the file is truncated or corrupt")
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataRange: begin..<end)
    }

}
