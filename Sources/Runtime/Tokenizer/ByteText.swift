/// Helpers for text held as UTF-8 bytes, the tokenizer's working form. Swift's `String` compares
/// and hashes by canonical equivalence ("é" precomposed equals "e" + U+0301), but a vocabulary
/// distinguishes the two, exactly like Rust's byte-wise `str`; so tokens are keyed by their bytes.
enum ByteText {
    /// The length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
    @inline(__always)
    static func sequenceLength(lead: UInt8) -> Int {
        switch lead {
        case 0..<0xC0: return 1
        case 0xC0..<0xE0: return 2
        case 0xE0..<0xF0: return 3
        default: return 4
        }
    }

    /// Each scalar of valid UTF-8 text with its byte range.
    static func scalarRanges<C: RandomAccessCollection>(_ text: C) -> [(scalar: Unicode.Scalar, range: Range<Int>)]
    where C.Element == UInt8, C.Index == Int {
        var out: [(scalar: Unicode.Scalar, range: Range<Int>)] = []
        out.reserveCapacity(text.count)
        var i = text.startIndex
        while i < text.endIndex {
            let length = min(sequenceLength(lead: text[i]), text.endIndex - i)
            out.append((decodeScalar(text, at: i, length: length), i..<(i + length)))
            i += length
        }
        return out
    }

    @inline(__always)
    static func decodeScalar<C: RandomAccessCollection>(_ text: C, at i: Int, length: Int) -> Unicode.Scalar
    where C.Element == UInt8, C.Index == Int {
        let lead = UInt32(text[i])
        var value: UInt32
        switch length {
        case 1: value = lead
        case 2: value = lead & 0x1F
        case 3: value = lead & 0x0F
        default: value = lead & 0x07
        }
        if length > 1 {
            for k in 1..<length { value = (value << 6) | (UInt32(text[i + k]) & 0x3F) }
        }
        return Unicode.Scalar(value) ?? "\u{FFFD}"
    }

    /// Non-overlapping occurrences of a non-empty literal, left to right.
    static func occurrences(of pattern: [UInt8], in text: [UInt8]) -> [Range<Int>] {
        guard !pattern.isEmpty, text.count >= pattern.count else { return [] }
        var out: [Range<Int>] = []
        let first = pattern[0]
        var i = 0
        let last = text.count - pattern.count
        while i <= last {
            if text[i] == first && matches(pattern, in: text, at: i) {
                out.append(i..<(i + pattern.count))
                i += pattern.count
            } else {
                i += 1
            }
        }
        return out
    }

    @inline(__always)
    static func matches(_ pattern: [UInt8], in text: [UInt8], at i: Int) -> Bool {
        guard i + pattern.count <= text.count else { return false }
        for k in 0..<pattern.count where text[i + k] != pattern[k] { return false }
        return true
    }

    static func hasPrefix(_ text: [UInt8], _ prefix: [UInt8]) -> Bool {
        matches(prefix, in: text, at: 0)
    }

    static func replacing(_ pattern: [UInt8], with content: [UInt8], in text: [UInt8]) -> [UInt8] {
        let found = occurrences(of: pattern, in: text)
        guard !found.isEmpty else { return text }
        var out: [UInt8] = []
        out.reserveCapacity(text.count + found.count * max(0, content.count - pattern.count))
        var from = 0
        for range in found {
            out.append(contentsOf: text[from..<range.lowerBound])
            out.append(contentsOf: content)
            from = range.upperBound
        }
        out.append(contentsOf: text[from..<text.count])
        return out
    }
}

/// A token's UTF-8 bytes as a dictionary key (byte equality, not canonical equivalence).
struct TokenBytes: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }
    init(_ string: String) { self.bytes = Array(string.utf8) }

    static func == (a: TokenBytes, b: TokenBytes) -> Bool { a.bytes == b.bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
