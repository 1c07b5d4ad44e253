import Foundation

/// Writes a safetensors file: header (8-byte length, JSON, space-padded to a multiple of 8 so the
/// data stays aligned), then each tensor's bytes in order, through AtomicFile: a reader never sees
/// half a file, and a full disk is a FileWriteError.
public struct SafetensorsWriter {
    public struct Entry {
        public let name: String
        public let dtype: TensorDType
        public let shape: [Int]
        /// Called once with a buffer of exactly dtype.byteSize × elements bytes to fill.
        public let fill: (UnsafeMutableRawBufferPointer) throws -> Void

        public init(name: String, dtype: TensorDType, shape: [Int], fill: @escaping (UnsafeMutableRawBufferPointer) throws -> Void) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.fill = fill
        }

        /// An fp32 array stored as `dtype`.
        public static func floats(_ name: String, _ values: [Float], shape: [Int], as dtype: TensorDType = .f32) -> Entry {
            precondition(values.count == shape.reduce(1, *), "\(name): \(values.count) values for shape \(shape)")
            return Entry(name: name, dtype: dtype, shape: shape) { buffer in
                values.withUnsafeBufferPointer { DTypeConversion.fromFloat32($0.baseAddress!, count: values.count, to: dtype, into: buffer.baseAddress!) }
            }
        }

        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    public var metadata: [String: String] = ["format": "pt"]

    public init() {}

    public func write(_ entries: [Entry], to url: URL) throws {
        var header = "{"
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(JSONStringLiteral.quote($0)):\(JSONStringLiteral.quote(metadata[$0]!))" }
            header += "\"__metadata__\":{\(pairs.joined(separator: ","))},"
        }
        var offset = 0
        header += entries.map { entry in
            defer { offset += entry.byteCount }
            let shape = entry.shape.map(String.init).joined(separator: ",")
            return "\(JSONStringLiteral.quote(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}"
        }.joined(separator: ",")
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }

        try AtomicFile.write(to: url) { output in
            var length = UInt64(headerBytes.count).littleEndian
            try withUnsafeBytes(of: &length) { try output.write($0) }
            try output.write(headerBytes)
            for entry in entries {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, entry.byteCount), alignment: 64)
                defer { buffer.deallocate() }
                try entry.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<entry.byteCount]))
                try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<entry.byteCount]))
            }
        }
    }
}
