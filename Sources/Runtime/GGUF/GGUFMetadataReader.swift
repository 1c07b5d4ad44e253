import Foundation

/// Typed reads of a GGUF file's metadata (the model config, the tokenizer, a LoRA adapter's
/// header): every missing key or wrong type is a FormatError of `file` naming the key.
public struct GGUFMetadataReader {
    public let metadata: [String: GGUFValue]
    public let file: String

    public func string(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw FormatError(file: file, "missing metadata key \(key)") }
        return value
    }

    public func optionalString(_ key: String) throws -> String? {
        guard let value = metadata[key] else { return nil }
        guard let text = value.stringValue else { throw FormatError(file: file, "metadata \(key) must be a string") }
        return text
    }

    public func optionalInt(_ key: String) throws -> Int? {
        guard let value = metadata[key] else { return nil }
        guard let n = value.intValue else { throw FormatError(file: file, "metadata \(key) must be an integer") }
        return n
    }

    public func optionalPositiveInt(_ key: String, limit: Int) throws -> Int? {
        guard let n = try optionalInt(key) else { return nil }
        guard n > 0, n <= limit else { throw FormatError(file: file, "metadata \(key) is \(n); it must be between 1 and \(limit)") }
        return n
    }

    public func positiveInt(_ key: String, limit: Int) throws -> Int {
        guard let n = try optionalPositiveInt(key, limit: limit) else { throw FormatError(file: file, "missing metadata key \(key)") }
        return n
    }

    public func optionalPositiveDouble(_ key: String) throws -> Double? {
        guard let value = metadata[key] else { return nil }
        guard let d = value.doubleValue, d.isFinite, d > 0 else { throw FormatError(file: file, "metadata \(key) must be a positive number") }
        return d
    }

    /// A width given once for all layers or as an array with one entry per layer.
    public func optionalPerLayer(_ key: String, layers: Int, limit: Int) throws -> [Int]? {
        guard let value = metadata[key] else { return nil }
        if let list = value.arrayValue {
            guard list.count == layers else { throw FormatError(file: file, "metadata \(key) has \(list.count) entries for \(layers) layers") }
            return try list.enumerated().map { index, item in
                guard let n = item.intValue, n > 0, n <= limit else {
                    throw FormatError(file: file, "metadata \(key)[\(index)] must be an integer between 1 and \(limit)")
                }
                return n
            }
        }
        return Array(repeating: try positiveInt(key, limit: limit), count: layers)
    }

    public func perLayer(_ key: String, layers: Int, limit: Int) throws -> [Int] {
        guard let values = try optionalPerLayer(key, layers: layers, limit: limit) else { throw FormatError(file: file, "missing metadata key \(key)") }
        return values
    }

    // The tokenizer's reads: arrays element by element, strings checked as UTF-8.
    public func error(_ key: String, _ problem: String) -> FormatError { FormatError(file: file, "\(key): \(problem)") }

    static func describe(_ value: GGUFValue) -> String {
        if case .array(let type, let items) = value { return "an array of \(type) (\(items.count) entries)" }
        return "a \(value.type) value"
    }

    public func utf8(_ value: GGUFValue, _ key: String) throws -> String {
        guard let bytes = value.bytesValue else { throw error(key, "expected a string, got \(GGUFMetadataReader.describe(value))") }
        guard LossyUTF8.isValid(bytes) else { throw error(key, "is not valid UTF-8") }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let value = metadata[key] else { return nil }
        guard let flag = value.boolValue else { throw error(key, "expected a bool, got \(GGUFMetadataReader.describe(value))") }
        return flag
    }

    private func array(_ key: String, _ what: String) throws -> [GGUFValue]? {
        guard let value = metadata[key] else { return nil }
        guard let items = value.arrayValue else { throw error(key, "expected an array of \(what), got \(GGUFMetadataReader.describe(value))") }
        return items
    }

    public func stringArray(_ key: String, required: Bool) throws -> [[UInt8]]? {
        guard let items = try array(key, "strings") else {
            if required { throw error(key, "missing") }
            return nil
        }
        return try items.enumerated().map { k, item in
            guard let bytes = item.bytesValue else { throw error("\(key)[\(k)]", "expected a string, got \(GGUFMetadataReader.describe(item))") }
            return bytes
        }
    }

    public func intArray(_ key: String) throws -> [Int]? {
        try array(key, "integers")?.enumerated().map { k, item in
            guard let v = item.intValue else { throw error("\(key)[\(k)]", "expected an integer, got \(GGUFMetadataReader.describe(item))") }
            return v
        }
    }

    public func boolArray(_ key: String) throws -> [Bool]? {
        try array(key, "bools")?.enumerated().map { k, item in
            guard let v = item.boolValue else { throw error("\(key)[\(k)]", "expected a bool, got \(GGUFMetadataReader.describe(item))") }
            return v
        }
    }

    public func floatArray(_ key: String) throws -> [Double]? {
        try array(key, "numbers")?.enumerated().map { k, item in
            guard let v = item.doubleValue else { throw error("\(key)[\(k)]", "expected a number, got \(GGUFMetadataReader.describe(item))") }
            return v
        }
    }
}
