import Foundation

/// Typed access to a parsed tokenizer.json / tokenizer_config.json: every wrong shape becomes a
/// FormatError naming the file and the field path ("model.merges[12]: ..."), never a crash.
struct TokenizerJSON {
    let file: String

    /// Parses with `TokenizerJSONParser` rather than JSONSerialization, which on Linux drops a
    /// U+FEFF at the start of a string or after an escape: vocabulary strings must stay exact.
    func parse(_ data: Data) throws -> TokenizerJSONParser.Object {
        let value: Any
        do {
            value = try TokenizerJSONParser.parse([UInt8](data))
        } catch let error as TokenizerJSONParser.SyntaxError {
            throw FormatError(file: file, "not valid JSON (\(error.problem) at byte \(error.offset))")
        }
        guard let object = value as? TokenizerJSONParser.Object else {
            throw FormatError(file: file, "the top level is not a JSON object")
        }
        return object
    }

    func error(_ path: String, _ problem: String) -> FormatError {
        FormatError(file: file, "\(path): \(problem)")
    }

    /// nil for an absent field or JSON null.
    func optional(_ object: TokenizerJSONParser.Object, _ key: String) -> Any? {
        guard let value = object[key], !(value is TokenizerJSONParser.Null) else { return nil }
        return value
    }

    func object(_ value: Any?, _ path: String) throws -> TokenizerJSONParser.Object {
        guard let object = value as? TokenizerJSONParser.Object else { throw error(path, "expected an object") }
        return object
    }

    func array(_ value: Any?, _ path: String) throws -> [Any] {
        guard let array = value as? [Any] else { throw error(path, "expected an array") }
        return array
    }

    func string(_ value: Any?, _ path: String) throws -> String {
        guard let string = value as? String else { throw error(path, "expected a string") }
        return string
    }

    func int(_ value: Any?, _ path: String) throws -> Int {
        if let integer = value as? Int { return integer }
        if let number = value as? Double, let exact = Int(exactly: number) { return exact }
        throw error(path, "expected an integer")
    }

    func bool(_ object: TokenizerJSONParser.Object, _ key: String, _ path: String, default fallback: Bool) throws -> Bool {
        guard let value = optional(object, key) else { return fallback }
        guard let flag = value as? Bool else { throw error("\(path).\(key)", "expected true or false") }
        return flag
    }

    func optionalString(_ object: TokenizerJSONParser.Object, _ key: String, _ path: String) throws -> String? {
        guard let value = optional(object, key) else { return nil }
        return try string(value, "\(path).\(key)")
    }

    /// The `type` of a component ("BPE", "ByteLevel", ...).
    func type(_ object: TokenizerJSONParser.Object, _ path: String) throws -> String {
        try string(object["type"], "\(path).type")
    }

    /// A single character field (Metaspace `replacement`, Strip `content`).
    func scalar(_ value: Any?, _ path: String) throws -> Unicode.Scalar {
        let text = try string(value, path)
        let scalars = Array(text.unicodeScalars)
        guard scalars.count == 1 else { throw error(path, "expected a single character, got \"\(text)\"") }
        return scalars[0]
    }
}
