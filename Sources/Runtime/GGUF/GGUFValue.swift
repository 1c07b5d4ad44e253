import Foundation

/// One metadata value of a GGUF file (ggml's docs/gguf.md, `gguf_metadata_value_type`). Strings
/// are kept as their raw bytes: GGUF does not promise UTF-8, and tokenizer vocabularies must stay
/// byte-exact. Arrays hold values of one element type (arrays of arrays are allowed by the format).
public indirect enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16)
    case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
    case float32(Float), float64(Double)
    case bool(Bool)
    case string([UInt8])
    /// The element type's code (as in the file) and the elements.
    case array(GGUFValueType, [GGUFValue])

    /// The format's type codes.
    public enum GGUFValueType: UInt32, Sendable {
        case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
        case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12
    }

    public var type: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// Any integer type as Int, when it fits.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Either float type (or an integer) as Double.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }

    public var boolValue: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    public var bytesValue: [UInt8]? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The string, decoded as UTF-8 (invalid sequences become U+FFFD).
    public var stringValue: String? {
        bytesValue.map { String(decoding: $0, as: UTF8.self) }
    }

    public var arrayValue: [GGUFValue]? {
        if case .array(_, let v) = self { return v }
        return nil
    }

    public static func string(_ text: String) -> GGUFValue { .string(Array(text.utf8)) }
}
