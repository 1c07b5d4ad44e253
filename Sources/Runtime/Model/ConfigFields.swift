import Foundation

/// Typed reads of config fields with errors that name the field.
public struct ConfigFields {
    public let object: [String: Any]
    public let file: String
    var prefix = ""

    init(_ object: [String: Any], file: String, prefix: String = "") {
        self.object = object
        self.file = file
        self.prefix = prefix
    }

    /// JSONSerialization's booleans also cast to numbers; tell them apart by their dynamic type.
    static func isBoolean(_ value: Any) -> Bool {
        value is Bool && String(describing: type(of: value)).contains("Bool")
    }

    /// An integer value (not a boolean, not fractional).
    static func integer(_ value: Any) -> Int? {
        guard !isBoolean(value), let d = value as? Double, d.rounded() == d, abs(d) < 9e15 else { return nil }
        return Int(d)
    }

    func number(_ key: String) throws -> Double? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard !Self.isBoolean(value), let d = value as? Double else {
            throw FormatError(file: file, "\(prefix)\(key) must be a number")
        }
        return d
    }

    func positiveInt(_ key: String) throws -> Int {
        guard let value = try optionalPositiveInt(key) else { throw FormatError(file: file, "missing required field \(prefix)\(key)") }
        return value
    }

    /// true, false, or nil when absent or null; anything else is a FormatError.
    public func optionalBool(_ key: String) throws -> Bool? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard Self.isBoolean(value) else { throw FormatError(file: file, "\(prefix)\(key) must be true or false") }
        return value as? Bool
    }

    /// FormatError unless `key` is absent or `expected` (an activation the family computes).
    public func requireActivation(_ key: String, _ expected: String) throws {
        guard let value = object[key], !(value is NSNull) else { return }
        guard let text = value as? String, text == expected else {
            throw FormatError(file: file, "\(prefix)\(key) \(value) is not supported; this family uses \(expected)")
        }
    }

    /// FormatError when `key` is true: a variant loramd does not compute (`supported` says what is).
    public func refuseTrue(_ key: String, _ supported: String) throws {
        if let value = object[key], Self.isBoolean(value), value as! Bool {
            throw FormatError(file: file, "\(prefix)\(key) true is not supported; \(supported)")
        }
    }

    public func optionalPositiveInt(_ key: String) throws -> Int? {
        guard let d = try number(key) else { return nil }
        guard d.rounded() == d, d > 0, d < 9e15 else {
            let shown = d.rounded() == d && abs(d) < 9e15 ? "\(Int(d))" : "\(d)"
            throw FormatError(file: file, "\(prefix)\(key) must be a positive integer, got \(shown)")
        }
        return Int(d)
    }

    func optionalDouble(_ key: String) throws -> Double? {
        guard let d = try number(key) else { return nil }
        guard d.isFinite, d > 0 else { throw FormatError(file: file, "\(prefix)\(key) must be a positive number, got \(d)") }
        return d
    }

    func requiredDouble(_ key: String) throws -> Double {
        guard let d = try optionalDouble(key) else { throw FormatError(file: file, "missing required field \(prefix)\(key)") }
        return d
    }

    /// bos/eos ids: an integer, a list of integers, or absent/null.
    func tokenIds(_ key: String) throws -> [Int] {
        switch object[key] {
        case .none, is NSNull: return []
        case let list as [Any]:
            return try list.map {
                guard let n = Self.integer($0), n >= 0 else { throw FormatError(file: file, "\(prefix)\(key) must be a token id or a list of them") }
                return n
            }
        case let value?:
            guard let n = Self.integer(value), n >= 0 else { throw FormatError(file: file, "\(prefix)\(key) must be a token id or a list of them") }
            return [n]
        }
    }
}
