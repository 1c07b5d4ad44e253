/// A strict RFC 8259 parser over UTF-8 bytes giving `Object`, `[Any]`, `String`, `Int`,
/// `Double`, `Bool` and `Null`. Strings are decoded byte-exactly; a lone surrogate escape becomes
/// U+FFFD. Nesting is limited so hostile input cannot exhaust the stack.
enum TokenizerJSONParser {
    struct Null {}

    /// A JSON object with its members in file order. Keys are compared byte for byte: a Swift
    /// `[String: Any]` would merge a vocabulary's "é" (U+00E9) and "e" + U+0301 into one entry.
    struct Object {
        private(set) var entries: [(key: String, value: Any)] = []
        private var index: [TokenBytes: Int] = [:]

        var count: Int { entries.count }

        /// The member named `key`; the last one when a key repeats (as serde_json reads a map).
        subscript(key: String) -> Any? {
            index[TokenBytes(key)].map { entries[$0].value }
        }

        mutating func append(_ key: String, _ value: Any) {
            entries.append((key, value))
            index[TokenBytes(key)] = entries.count - 1
        }
    }

    struct SyntaxError: Error {
        let problem: String
        let offset: Int
    }

    static let maxDepth = 512

    static func parse(_ bytes: [UInt8]) throws -> Any {
        var parser = Cursor(bytes: bytes)
        // A UTF-8 byte order mark before the document is tolerated, as most readers do.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.position == bytes.count else { throw parser.fail("unexpected text after the document") }
        return value
    }

    private struct Cursor {
        let bytes: [UInt8]
        var position = 0

        func fail(_ problem: String) -> SyntaxError { SyntaxError(problem: problem, offset: position) }

        mutating func skipWhitespace() {
            while position < bytes.count {
                switch bytes[position] {
                case 0x20, 0x09, 0x0A, 0x0D: position += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: String, _ value: Any) throws -> Any {
            let expected = Array(literal.utf8)
            guard position + expected.count <= bytes.count,
                  bytes[position..<(position + expected.count)].elementsEqual(expected) else {
                throw fail("invalid literal")
            }
            position += expected.count
            return value
        }

        mutating func value(depth: Int) throws -> Any {
            guard depth < TokenizerJSONParser.maxDepth else { throw fail("nesting deeper than \(TokenizerJSONParser.maxDepth)") }
            guard position < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var object = Object()
                skipWhitespace()
                if position < bytes.count && bytes[position] == UInt8(ascii: "}") { position += 1; return object }
                while true {
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                    let key = try string()
                    skipWhitespace()
                    guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                    position += 1
                    skipWhitespace()
                    object.append(key, try value(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw fail("unexpected end of input") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "}") { position += 1; return object }
                    throw fail("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                position += 1
                var array: [Any] = []
                skipWhitespace()
                if position < bytes.count && bytes[position] == UInt8(ascii: "]") { position += 1; return array }
                while true {
                    skipWhitespace()
                    array.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw fail("unexpected end of input") }
                    if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
                    if bytes[position] == UInt8(ascii: "]") { position += 1; return array }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""):
                return try string()
            case UInt8(ascii: "t"): return try expect("true", true)
            case UInt8(ascii: "f"): return try expect("false", false)
            case UInt8(ascii: "n"): return try expect("null", Null())
            default:
                return try number()
            }
        }

        mutating func number() throws -> Any {
            let start = position
            func digits() -> Int {
                let from = position
                while position < bytes.count && bytes[position] >= 0x30 && bytes[position] <= 0x39 { position += 1 }
                return position - from
            }
            if position < bytes.count && bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard position < bytes.count, bytes[position] >= 0x30 && bytes[position] <= 0x39 else { throw fail("invalid value") }
            if bytes[position] == 0x30 { position += 1 } else { _ = digits() }
            var integral = true
            if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
                position += 1
                integral = false
                guard digits() > 0 else { throw fail("invalid number") }
            }
            if position < bytes.count && (bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E")) {
                position += 1
                integral = false
                if position < bytes.count && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-")) { position += 1 }
                guard digits() > 0 else { throw fail("invalid number") }
            }
            let text = String(decoding: bytes[start..<position], as: UTF8.self)
            if integral, let integer = Int(text) { return integer }
            guard let double = Double(text) else { throw fail("invalid number") }
            return double
        }

        mutating func string() throws -> String {
            position += 1  // the opening quote
            let start = position
            // Fast path: no escapes.
            while position < bytes.count {
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") {
                    let text = bytes[start..<position]
                    position += 1
                    return try validated(text)
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw fail("control character in a string") }
                position += 1
            }
            var out = Array(bytes[start..<position])
            while position < bytes.count {
                let byte = bytes[position]
                switch byte {
                case UInt8(ascii: "\""):
                    position += 1
                    return try validated(out[...])
                case UInt8(ascii: "\\"):
                    position += 1
                    guard position < bytes.count else { throw fail("unexpected end of input") }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            if position + 6 <= bytes.count && bytes[position] == UInt8(ascii: "\\") && bytes[position + 1] == UInt8(ascii: "u") {
                                let saved = position
                                position += 2
                                let low = try hex4()
                                if (0xDC00..<0xE000).contains(low) {
                                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                                } else {
                                    position = saved
                                    scalar = 0xFFFD
                                }
                            } else {
                                scalar = 0xFFFD
                            }
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            scalar = 0xFFFD
                        }
                        out.append(contentsOf: String(Unicode.Scalar(scalar)!).utf8)
                    default:
                        throw fail("invalid escape")
                    }
                default:
                    if byte < 0x20 { throw fail("control character in a string") }
                    out.append(byte)
                    position += 1
                }
            }
            throw fail("unterminated string")
        }

        mutating func hex4() throws -> UInt32 {
            guard position + 4 <= bytes.count else { throw fail("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[position]
                let digit: UInt32
                switch c {
                case 0x30...0x39: digit = UInt32(c - 0x30)
                case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
                case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
                default: throw fail("invalid \\u escape")
                }
                value = value << 4 | digit
                position += 1
            }
            return value
        }

        func validated(_ text: ArraySlice<UInt8>) throws -> String {
            if text.contains(where: { $0 >= 0x80 }) && !LossyUTF8.isValid(Array(text)) {
                throw fail("invalid UTF-8 in a string")
            }
            return String(decoding: text, as: UTF8.self)
        }
    }
}
