/// GPT-2's reversible map between the 256 byte values and printable Unicode scalars, which lets a
/// byte-level BPE vocabulary be stored as JSON text: printable ASCII and most of Latin-1 map to
/// themselves, the other 68 bytes to U+0100…U+0143 in byte order (space → "Ġ", "\n" → "Ċ").
enum ByteLevelAlphabet {
    /// The scalar standing for each byte.
    static let scalarForByte: [Unicode.Scalar] = {
        var printable = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { printable[b] = true }
        for b in 0xA1...0xAC { printable[b] = true }
        for b in 0xAE...0xFF { printable[b] = true }
        var scalars = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if printable[b] {
                scalars[b] = Unicode.Scalar(UInt32(b))!
            } else {
                scalars[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return scalars
    }()

    /// The UTF-8 encoding of each byte's scalar: what a pre-token's bytes become.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String($0).utf8) }

    /// The byte a scalar stands for, indexed by scalar value; -1 where the scalar is not in the alphabet.
    private static let byteForScalarTable: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in scalarForByte.enumerated() { table[Int(s.value)] = Int16(b) }
        return table
    }()

    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < byteForScalarTable.count, byteForScalarTable[v] >= 0 else { return nil }
        return UInt8(byteForScalarTable[v])
    }

    /// Maps raw bytes to the alphabet's UTF-8 text.
    static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(contentsOf: utf8ForByte[Int(b)]) }
        return out
    }

    /// Maps a token back to raw bytes, or nil when one of its scalars is outside the alphabet
    /// (the ByteLevel decoder then keeps the token's own UTF-8, as tokenizers does).
    static func decode(_ token: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        for scalar in String(decoding: token, as: UTF8.self).unicodeScalars {
            guard let b = byte(for: scalar) else { return nil }
            out.append(b)
        }
        return out
    }
}
