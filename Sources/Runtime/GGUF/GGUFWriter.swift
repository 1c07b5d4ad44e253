import Foundation

/// Builds a GGUF v3 file: metadata in insertion order, then tensors in insertion order, each at
/// the next multiple of `alignment` in the data section (as gguf-py's GGUFWriter lays them out).
/// `write(to:)` checks everything first, then writes through AtomicFile (a temporary file beside
/// the destination, synced and renamed into place), so a reader never sees half a file.
///
/// ```swift
/// var writer = GGUFWriter()
/// writer.set("general.architecture", .string("llama"))
/// try writer.addTensor("token_embd.weight", dimensions: [dim, vocab], values: embedding, as: .q8_0)
/// try writer.write(to: url)
/// ```
public struct GGUFWriter {
    public let alignment: Int
    private var entries: [(key: String, value: GGUFValue)] = []
    private var keyPositions: [String: Int] = [:]
    private var tensors: [(name: String, dimensions: [Int], type: GGUFTensorType, bytes: [UInt8])] = []

    public init(alignment: Int = GGUFFile.defaultAlignment) {
        precondition(alignment > 0 && alignment & (alignment - 1) == 0 && alignment <= Int(UInt32.max),
                     "GGUF alignment must be a power of two that fits a uint32, not \(alignment)")
        self.alignment = alignment
    }

    /// Sets a metadata value; setting a key again replaces the value and keeps its place.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let position = keyPositions[key] {
            entries[position].value = value
        } else {
            keyPositions[key] = entries.count
            entries.append((key, value))
        }
    }

    /// Adds a tensor already encoded as `type` (`dimensions` ne0 first). Shapes and sizes are
    /// checked by `write(to:)`.
    public mutating func addTensor(_ name: String, dimensions: [Int], type: GGUFTensorType, bytes: [UInt8]) {
        tensors.append((name, dimensions, type, bytes))
    }

    /// Adds a tensor from fp32 values (ne0 fastest), encoded as `type`: F32, F16, BF16, Q8_0,
    /// Q4_0, Q4_1, Q5_0 or Q5_1. QuantizationError for other types or mismatched shapes.
    public mutating func addTensor(_ name: String, dimensions: [Int], values: [Float], as type: GGUFTensorType) throws {
        guard type.isEncodable else {
            let encodable = GGUFTensorType.allCases.filter(\.isEncodable).map(\.name).joined(separator: ", ")
            throw QuantizationError(field: "type", "tensor \(name): cannot encode \(type.name) (encodable: \(encodable))")
        }
        let count = try Self.elementCount(dimensions, type: type)
            .mapError { QuantizationError(field: "dimensions", "tensor \(name): \($0)") }.get()
        guard count == values.count else {
            throw QuantizationError(field: "values", "tensor \(name): \(values.count) values for dimensions \(dimensions) (\(count) elements)")
        }
        let bytes = values.withUnsafeBufferPointer { GGUFQuantization.quantize($0, as: type) }
        addTensor(name, dimensions: dimensions, type: type, bytes: bytes)
    }

    private struct ShapeProblem: Error, CustomStringConvertible { let description: String }

    /// The element count of `dimensions` as a tensor of `type`, or what is wrong with them.
    private static func elementCount(_ dimensions: [Int], type: GGUFTensorType) -> Result<Int, ShapeProblem> {
        guard (1...GGUFFile.maxDimensions).contains(dimensions.count) else {
            return .failure(ShapeProblem(description: "\(dimensions.count) dimensions; ggml tensors have 1 to \(GGUFFile.maxDimensions)"))
        }
        var count = 1
        for n in dimensions {
            guard n >= 1 else { return .failure(ShapeProblem(description: "dimensions \(dimensions) include one below 1")) }
            let (product, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow else { return .failure(ShapeProblem(description: "dimensions \(dimensions) are too large")) }
            count = product
        }
        guard dimensions[0] % type.blockSize == 0 else {
            return .failure(ShapeProblem(description: "row length ne0 = \(dimensions[0]) is not a multiple of the \(type.name) block size \(type.blockSize)"))
        }
        return .success(count)
    }

    /// Writes the file (see the type's comment). FormatError naming the file for a tensor whose
    /// bytes do not match its shape, a name used twice, a malformed array value; FileWriteError
    /// when the file system refuses the write; OutputConflict when `rule` refuses what is at `url`.
    public func write(to url: URL, rule: OutputRule = .ggufFile) throws {
        let file = url.lastPathComponent
        var header = try encodeHeader(file: file)
        header.append(contentsOf: [UInt8](repeating: 0, count: padding(header.count)))

        try AtomicFile.write(to: url, rule: rule) { output in
            try output.write(header)
            for tensor in tensors {
                try output.write(tensor.bytes)
                try output.write([UInt8](repeating: 0, count: padding(tensor.bytes.count)))
            }
        }
    }

    private func padding(_ count: Int) -> Int { (alignment - count % alignment) % alignment }

    /// Magic, version, counts, metadata and tensor infos.
    private func encodeHeader(file: String) throws -> [UInt8] {
        var entries = self.entries
        if let position = keyPositions["general.alignment"] {
            guard entries[position].value == .uint32(UInt32(alignment)) else {
                throw FormatError(file: file, "general.alignment is set to \(entries[position].value) but the writer aligns to \(alignment); pass the alignment to GGUFWriter(alignment:)")
            }
        } else if alignment != GGUFFile.defaultAlignment {
            entries.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        }
        var out: [UInt8] = Array("GGUF".utf8)
        Self.put(UInt32(3), &out)
        Self.put(UInt64(tensors.count), &out)
        Self.put(UInt64(entries.count), &out)
        for (key, value) in entries {
            Self.put(Array(key.utf8), &out)
            Self.put(value.type.rawValue, &out)
            try Self.put(value, &out, key: key, file: file)
        }
        var names = Set<String>()
        var offset = 0
        for tensor in tensors {
            guard names.insert(tensor.name).inserted else { throw FormatError(file: file, "tensor \(tensor.name) added twice") }
            let count: Int
            switch Self.elementCount(tensor.dimensions, type: tensor.type) {
            case .success(let n): count = n
            case .failure(let problem): throw FormatError(file: file, "tensor \(tensor.name): \(problem)")
            }
            let expected = count / tensor.type.blockSize * tensor.type.typeSize
            guard tensor.bytes.count == expected else {
                throw FormatError(file: file, "tensor \(tensor.name): \(tensor.bytes.count) bytes, but \(tensor.dimensions) of \(tensor.type.name) takes \(expected)")
            }
            Self.put(Array(tensor.name.utf8), &out)
            Self.put(UInt32(tensor.dimensions.count), &out)
            for n in tensor.dimensions { Self.put(UInt64(n), &out) }
            Self.put(tensor.type.rawValue, &out)
            Self.put(UInt64(offset), &out)
            offset += expected + padding(expected)
        }
        return out
    }

    private static func put<T: FixedWidthInteger>(_ value: T, _ out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func put(_ string: [UInt8], _ out: inout [UInt8]) {
        put(UInt64(string.count), &out)
        out.append(contentsOf: string)
    }

    private static func put(_ value: GGUFValue, _ out: inout [UInt8], key: String, file: String) throws {
        switch value {
        case .uint8(let v): put(v, &out)
        case .int8(let v): put(v, &out)
        case .uint16(let v): put(v, &out)
        case .int16(let v): put(v, &out)
        case .uint32(let v): put(v, &out)
        case .int32(let v): put(v, &out)
        case .uint64(let v): put(v, &out)
        case .int64(let v): put(v, &out)
        case .float32(let v): put(v.bitPattern, &out)
        case .float64(let v): put(v.bitPattern, &out)
        case .bool(let v): put(UInt8(v ? 1 : 0), &out)
        case .string(let bytes): put(bytes, &out)
        case .array(let type, let elements):
            put(type.rawValue, &out)
            put(UInt64(elements.count), &out)
            for element in elements {
                // The file states one element type per array; a stray element would misparse.
                guard element.type == type else {
                    throw FormatError(file: file, "metadata \(key): an array of \(type) holds a \(element.type)")
                }
                try put(element, &out, key: key, file: file)
            }
        }
    }
}
