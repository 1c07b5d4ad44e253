/// Encodes an Encodable into a JSONValue: members in declaration order, a nil optional as `null`
/// (not left out), integers as integers and doubles as doubles (an integral double keeps its
/// fraction when serialized). A result struct encoded this way reads on the wire exactly as the
/// same result built by hand as a JSONValue.
public enum JSONValueEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let json = value as? JSONValue { return json }
        let box = Box()
        try value.encode(to: ValueEncoder(box: box, codingPath: []))
        return box.value
    }
}

/// A result that travels through `JSONValueEncoder` (see there) rather than Foundation's JSONEncoder.
public protocol WireResult: Encodable {}

extension WireResult {
    /// The result as the JSON it is sent as.
    public var json: JSONValue { (try? JSONValueEncoder.encode(self)) ?? .null }
}

/// Where a nested container writes: the value grows in place as members and items arrive.
private final class Box {
    var value: JSONValue = .null
}

private struct ValueEncoder: Encoder {
    let box: Box
    let codingPath: [CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = box.value {} else { box.value = .object([]) }
        return KeyedEncodingContainer(KeyedContainer<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> UnkeyedEncodingContainer {
        if case .array = box.value {} else { box.value = .array([]) }
        return UnkeyedContainer(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> SingleValueEncodingContainer { SingleContainer(box: box, codingPath: codingPath) }
}

/// One value to JSON: primitives directly, anything else through its own `encode(to:)`.
private func encoded<T: Encodable>(_ value: T, codingPath: [CodingKey]) throws -> JSONValue {
    switch value {
    case let json as JSONValue: return json
    case let b as Bool: return .bool(b)
    case let s as String: return .string(s)
    case let d as Double: return .double(d)
    case let f as Float: return .double(Double(f))
    case let i as Int: return .int(Int64(i))
    case let i as Int64: return .int(i)
    case let i as Int32: return .int(Int64(i))
    case let u as UInt64:
        guard u <= UInt64(Int64.max) else { return .double(Double(u)) }
        return .int(Int64(u))
    case let u as UInt: return .int(Int64(clamping: u))
    default:
        let box = Box()
        try value.encode(to: ValueEncoder(box: box, codingPath: codingPath))
        return box.value
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: Box
    let codingPath: [CodingKey]

    private func set(_ value: JSONValue, _ key: Key) {
        guard case .object(var members) = box.value else { return }
        members.removeAll { $0.0 == key.stringValue }
        members.append((key.stringValue, value))
        box.value = .object(members)
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { set(try encoded(value, codingPath: codingPath + [key]), key) }

    // An absent optional is sent as null, as every hand-built result did.
    mutating func encodeIfPresent<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { set(.null, key) }
    }
    mutating func encodeIfPresent(_ value: Bool?, forKey key: Key) throws { set(value.map(JSONValue.bool) ?? .null, key) }
    mutating func encodeIfPresent(_ value: String?, forKey key: Key) throws { set(value.map(JSONValue.string) ?? .null, key) }
    mutating func encodeIfPresent(_ value: Double?, forKey key: Key) throws { set(value.map(JSONValue.double) ?? .null, key) }
    mutating func encodeIfPresent(_ value: Float?, forKey key: Key) throws { set(value.map { .double(Double($0)) } ?? .null, key) }
    mutating func encodeIfPresent(_ value: Int?, forKey key: Key) throws { set(value.map { .int(Int64($0)) } ?? .null, key) }
    mutating func encodeIfPresent(_ value: Int64?, forKey key: Key) throws { set(value.map(JSONValue.int) ?? .null, key) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        preconditionFailure("nested containers are not used by result structs")
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
        preconditionFailure("nested containers are not used by result structs")
    }
    mutating func superEncoder() -> Encoder { preconditionFailure("superEncoder is not used by result structs") }
    mutating func superEncoder(forKey key: Key) -> Encoder { preconditionFailure("superEncoder is not used by result structs") }
}

private struct IndexKey: CodingKey {
    let intValue: Int?
    var stringValue: String { String(intValue ?? 0) }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { return nil }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let box: Box
    let codingPath: [CodingKey]
    var count: Int { if case .array(let items) = box.value { return items.count } else { return 0 } }

    private func append(_ value: JSONValue) {
        guard case .array(var items) = box.value else { return }
        items.append(value)
        box.value = .array(items)
    }

    mutating func encodeNil() throws { append(.null) }
    mutating func encode<T: Encodable>(_ value: T) throws { append(try encoded(value, codingPath: codingPath + [IndexKey(count)])) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        preconditionFailure("nested containers are not used by result structs")
    }
    mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer { preconditionFailure("nested containers are not used by result structs") }
    mutating func superEncoder() -> Encoder { preconditionFailure("superEncoder is not used by result structs") }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let box: Box
    let codingPath: [CodingKey]

    mutating func encodeNil() throws { box.value = .null }
    mutating func encode<T: Encodable>(_ value: T) throws { box.value = try encoded(value, codingPath: codingPath) }
}
