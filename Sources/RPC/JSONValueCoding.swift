import Foundation

/// JSONValue travels through Codable so handlers can take or return raw JSON where a typed
/// struct would add nothing (echo, pass-through `data`).
extension JSONValue: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    public init(from decoder: Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            self = .object(try object.allKeys.map { ($0.stringValue, try object.decode(JSONValue.self, forKey: $0)) })
            return
        }
        if var array = try? decoder.unkeyedContainer() {
            var items: [JSONValue] = []
            while !array.isAtEnd { items.append(try array.decode(JSONValue.self)) }
            self = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let i = try? single.decode(Int64.self) { self = .int(i) }
        else if let d = try? single.decode(Double.self) { self = .double(d) }
        else { self = .string(try single.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        switch self {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case .bool(let b): var c = encoder.singleValueContainer(); try c.encode(b)
        case .int(let i): var c = encoder.singleValueContainer(); try c.encode(i)
        case .double(let d): var c = encoder.singleValueContainer(); try c.encode(d)
        case .string(let s): var c = encoder.singleValueContainer(); try c.encode(s)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let members):
            var c = encoder.container(keyedBy: Key.self)
            for (key, value) in members { try c.encode(value, forKey: Key(stringValue: key)) }
        }
    }
}

/// Turns request params into a handler's typed params and results back into JSON bytes. A
/// missing or ill-typed field becomes InvalidParams naming that field ("dataset.path", "ids[3]").
public enum ParamsCoding {
    public static func decode<P: Decodable>(_ type: P.Type, from params: JSONValue?) throws -> P {
        if P.self == JSONValue.self { return (params ?? .object([])) as! P }
        let value = params ?? .object([])
        guard case .object = value else {
            throw RPCError.invalidParams(field: "params", "must be an object, got \(value.kindName)")
        }
        do {
            return try JSONValueDecoder.decode(P.self, from: value)
        } catch let error as DecodingError {
            throw invalidParams(from: error)
        }
    }

    public static func encode<R: Encodable>(_ result: R) throws -> [UInt8] {
        if let value = result as? JSONValue { return value.serialized() }
        if let raw = result as? RawJSON { return raw.bytes }
        if let wire = result as? WireResult { return try JSONValueEncoder.encode(wire).serialized() }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        do {
            return Array(try encoder.encode(result))
        } catch {
            throw RPCError.internalError("could not encode the result: \(error)")
        }
    }

    static func invalidParams(from error: DecodingError) -> RPCError {
        switch error {
        case .keyNotFound(let key, let context):
            return .invalidParams(field: path(context.codingPath + [key]), "is required")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return .invalidParams(field: path(context.codingPath), context.debugDescription)
        case .dataCorrupted(let context):
            // Enums with raw values land here: "Cannot initialize Schedule from invalid String value x".
            let detail = context.debugDescription.hasPrefix("is ") || context.debugDescription.hasPrefix("must ") ? context.debugDescription : "is invalid: \(context.debugDescription)"
            return .invalidParams(field: path(context.codingPath), detail)
        @unknown default:
            return .invalidParams(field: "params", "could not be decoded: \(error)")
        }
    }

    static func path(_ keys: [CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let index = key.intValue, Int(key.stringValue) == index || key.stringValue.hasPrefix("Index ") {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out
    }
}
