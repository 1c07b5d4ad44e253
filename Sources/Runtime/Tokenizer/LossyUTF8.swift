/// UTF-8 decoding that replaces each invalid sequence with U+FFFD exactly as Rust's
/// `String::from_utf8_lossy` does (one replacement per maximal invalid subpart). Decoded text from
/// a random model is full of cut-off sequences, and the golden decodes depend on this rule.
enum LossyUTF8 {
    static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// The text of `bytes`, invalid sequences replaced.
    static func string(_ bytes: [UInt8]) -> String {
        String(decoding: repaired(bytes), as: UTF8.self)
    }

    /// `bytes` as valid UTF-8: itself when already valid, else with U+FFFD for each invalid sequence.
    static func repaired(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        var validFrom = 0
        while i < bytes.count {
            let length = validSequenceLength(bytes, at: i)
            if length > 0 {
                i += length
                continue
            }
            if out.isEmpty { out.reserveCapacity(bytes.count + 8) }
            out.append(contentsOf: bytes[validFrom..<i])
            out.append(contentsOf: replacement)
            i += invalidSequenceLength(bytes, at: i)
            validFrom = i
        }
        if validFrom == 0 { return bytes }
        out.append(contentsOf: bytes[validFrom..<bytes.count])
        return out
    }

    static func isValid(_ bytes: [UInt8]) -> Bool {
        var i = 0
        while i < bytes.count {
            let length = validSequenceLength(bytes, at: i)
            if length == 0 { return false }
            i += length
        }
        return true
    }

    /// The length of the well-formed sequence starting at `i`, or 0 if it is not one.
    static func validSequenceLength(_ bytes: [UInt8], at i: Int) -> Int {
        let lead = bytes[i]
        if lead < 0x80 { return 1 }
        let consumed = invalidOrValidPrefix(bytes, at: i)
        return consumed.complete ? consumed.length : 0
    }

    /// How many bytes one U+FFFD replaces at `i`: the longest prefix of a well-formed sequence
    /// there, at least 1 (Unicode's "maximal subpart" practice, which Rust follows).
    static func invalidSequenceLength(_ bytes: [UInt8], at i: Int) -> Int {
        max(1, invalidOrValidPrefix(bytes, at: i).length)
    }

    /// Walks the sequence starting with a non-ASCII lead byte at `i` the way Rust's `Utf8Chunks`
    /// does: the bytes that fit a well-formed sequence, and whether that sequence is complete.
    private static func invalidOrValidPrefix(_ bytes: [UInt8], at i: Int) -> (length: Int, complete: Bool) {
        let lead = bytes[i]
        func byte(_ k: Int) -> UInt8? { i + k < bytes.count ? bytes[i + k] : nil }
        func isContinuation(_ b: UInt8?) -> Bool { b.map { $0 & 0xC0 == 0x80 } ?? false }
        let width: Int
        let secondRange: ClosedRange<UInt8>
        switch lead {
        case 0xC2...0xDF: width = 2; secondRange = 0x80...0xBF
        case 0xE0: width = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: width = 3; secondRange = 0x80...0xBF
        case 0xED: width = 3; secondRange = 0x80...0x9F
        case 0xF0: width = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: width = 4; secondRange = 0x80...0xBF
        case 0xF4: width = 4; secondRange = 0x80...0x8F
        default: return (1, false)
        }
        guard let second = byte(1), secondRange.contains(second) else { return (1, false) }
        for k in 2..<width where !isContinuation(byte(k)) { return (k, false) }
        return (width, true)
    }
}
