/// ggml's block formats turned into fp32, as ggml-quants.c's reference `dequantize_row_*` does
/// (and gguf-py's `gguf.quants.dequantize`, which the tests hold it to, bit for bit).
///
/// Every product and sum is done in fp32 in the reference's order, e.g. Q4_K is
/// `(d * scale) * q - (dmin * min)`; reassociating or fusing them would change the last bit.
/// The source may be unaligned (GGUF tensors sit at any multiple of the file's alignment, and a
/// range may start mid-tensor), so every multi-byte field is read with an unaligned load.
public enum GGUFDequantization {
    /// Decodes `count` elements (a whole number of blocks) of `type` starting at `source` into
    /// `destination`. The caller checks `type.isDequantizable` and the block alignment.
    public static func dequantize(_ type: GGUFTensorType, from source: UnsafeRawPointer, count: Int,
                                  into destination: UnsafeMutablePointer<Float>) {
        precondition(type.isDequantizable, "\(type.name) cannot be dequantized")
        precondition(count >= 0 && count % type.blockSize == 0, "\(count) elements is not a whole number of \(type.name) blocks")
        let blocks = count / type.blockSize
        let size = type.typeSize
        switch type {
        case .f32:
            for i in 0..<count { destination[i] = Float(bitPattern: u32(source, 4 * i)) }
        case .f16:
            for i in 0..<count { destination[i] = f16(source, 2 * i) }
        case .bf16:
            for i in 0..<count { destination[i] = Float(bitPattern: UInt32(u16(source, 2 * i)) << 16) }
        default:
            for b in 0..<blocks {
                let block = source + b * size
                let y = destination + b * type.blockSize
                switch type {
                case .q4_0: q4_0(block, y)
                case .q4_1: q4_1(block, y)
                case .q5_0: q5_0(block, y)
                case .q5_1: q5_1(block, y)
                case .q8_0: q8_0(block, y)
                case .q2_K: q2_K(block, y)
                case .q3_K: q3_K(block, y)
                case .q4_K: q4_K(block, y)
                case .q5_K: q5_K(block, y)
                case .q6_K: q6_K(block, y)
                case .iq4_NL: iq4_NL(block, y)
                case .iq4_XS: iq4_XS(block, y)
                case .tq1_0: tq1_0(block, y)
                case .tq2_0: tq2_0(block, y)
                case .mxfp4: mxfp4(block, y)
                default: preconditionFailure("\(type.name) is marked dequantizable but has no decoder")
                }
            }
        }
    }

    // MARK: 32-element blocks

    /// d (f16), 16 bytes of nibbles: element j is the low nibble of byte j, element j+16 the high one.
    private static func q4_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0)
        for j in 0..<16 {
            let q = u8(x, 2 + j)
            y[j] = Float(Int32(q & 0x0F) - 8) * d
            y[j + 16] = Float(Int32(q >> 4) - 8) * d
        }
    }

    /// d, m (f16), nibbles as Q4_0, unsigned: d * q + m.
    private static func q4_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), m = f16(x, 2)
        for j in 0..<16 {
            let q = u8(x, 4 + j)
            y[j] = Float(q & 0x0F) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    /// d (f16), qh (32 fifth bits, one per element), nibbles as Q4_0; q - 16.
    private static func q5_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), qh = u32(x, 2)
        for j in 0..<16 {
            let q = u8(x, 6 + j)
            let h0 = UInt8((qh >> UInt32(j)) & 1) << 4, h1 = UInt8((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(Int32((q & 0x0F) | h0) - 16) * d
            y[j + 16] = Float(Int32((q >> 4) | h1) - 16) * d
        }
    }

    /// d, m (f16), qh, nibbles; unsigned: d * q + m.
    private static func q5_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), m = f16(x, 2), qh = u32(x, 4)
        for j in 0..<16 {
            let q = u8(x, 8 + j)
            let h0 = UInt8((qh >> UInt32(j)) & 1) << 4, h1 = UInt8((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float((q & 0x0F) | h0) * d + m
            y[j + 16] = Float((q >> 4) | h1) * d + m
        }
    }

    /// d (f16), 32 int8.
    private static func q8_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0)
        for j in 0..<32 { y[j] = Float(Int8(bitPattern: u8(x, 2 + j))) * d }
    }

    /// d (f16), nibbles as Q4_0 indexing the IQ4_NL non-linear grid.
    private static func iq4_NL(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0)
        for j in 0..<16 {
            let q = u8(x, 2 + j)
            y[j] = d * Float(kvaluesIQ4NL[Int(q & 0x0F)])
            y[j + 16] = d * Float(kvaluesIQ4NL[Int(q >> 4)])
        }
    }

    /// e (E8M0 exponent), nibbles as Q4_0 indexing the doubled E2M1 values; the scale is halved.
    private static func mxfp4(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let e = u8(x, 0)
        // ggml_e8m0_to_fp32_half: 2^(e-128), subnormal for e < 2.
        let d = Float(bitPattern: e < 2 ? UInt32(0x0020_0000) << UInt32(e) : UInt32(e - 1) << 23)
        for j in 0..<16 {
            let q = u8(x, 1 + j)
            y[j] = Float(kvaluesMXFP4[Int(q & 0x0F)]) * d
            y[j + 16] = Float(kvaluesMXFP4[Int(q >> 4)]) * d
        }
    }

    // MARK: 256-element super-blocks

    /// scales[16] (low nibble scale, high nibble min), qs[64] (2 bits), d, dmin (f16).
    /// Element 128h + 32j + l is bits 2j of qs[32h + l]; sub-block of 16 = element / 16.
    private static func q2_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 80), dmin = f16(x, 82)
        for h in 0..<2 {
            for j in 0..<4 {
                for half16 in 0..<2 {
                    let s = u8(x, h * 8 + j * 2 + half16)
                    let dl = d * Float(s & 0x0F), ml = dmin * Float(s >> 4)
                    for l in (16 * half16)..<(16 * half16 + 16) {
                        let q = (u8(x, 16 + 32 * h + l) >> UInt8(2 * j)) & 3
                        y[128 * h + 32 * j + l] = dl * Float(q) - ml
                    }
                }
            }
        }
    }

    /// hmask[32], qs[64] (2 low bits as Q2_K), scales[12] (16 six-bit scales), d (f16).
    /// The third bit of element 128h + 32j + l is bit 4h + j of hmask[l]; a clear bit means -4.
    private static func q3_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 108)
        for h in 0..<2 {
            for j in 0..<4 {
                for half16 in 0..<2 {
                    let s = 8 * h + 2 * j + half16
                    let low = (u8(x, 96 + s % 8) >> UInt8(4 * (s / 8))) & 0x0F
                    let high = (u8(x, 104 + s % 4) >> UInt8(2 * (s / 4))) & 0x03
                    let dl = d * Float(Int32(low | high << 4) - 32)
                    for l in (16 * half16)..<(16 * half16 + 16) {
                        let q = Int32((u8(x, 32 + 32 * h + l) >> UInt8(2 * j)) & 3)
                        let bit = (u8(x, l) >> UInt8(4 * h + j)) & 1
                        y[128 * h + 32 * j + l] = dl * Float(q - (bit == 0 ? 4 : 0))
                    }
                }
            }
        }
    }

    /// The eight 6-bit scales and mins of Q4_K and Q5_K, packed in 12 bytes at `at`.
    @inline(__always)
    private static func scaleMin(_ x: UnsafeRawPointer, at: Int, _ s: Int) -> (scale: UInt8, min: UInt8) {
        if s < 4 { return (u8(x, at + s) & 63, u8(x, at + s + 4) & 63) }
        let packed = u8(x, at + s + 4)
        return ((packed & 0x0F) | ((u8(x, at + s - 4) >> 6) << 4), (packed >> 4) | ((u8(x, at + s) >> 6) << 4))
    }

    /// d, dmin (f16), scales[12], qs[128]: element 64c + 32n + l is nibble n of qs[32c + l];
    /// sub-block of 32 = 2c + n.
    private static func q4_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), dmin = f16(x, 2)
        for s in 0..<8 {
            let (scale, min) = scaleMin(x, at: 4, s)
            let d1 = d * Float(scale), m1 = dmin * Float(min)
            let (c, n) = (s / 2, s % 2)
            for l in 0..<32 {
                let q = (u8(x, 16 + 32 * c + l) >> UInt8(4 * n)) & 0x0F
                y[32 * s + l] = d1 * Float(q) - m1
            }
        }
    }

    /// d, dmin (f16), scales[12], qh[32], qs[128]: Q4_K's nibbles plus a fifth bit, bit s of qh[l].
    private static func q5_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), dmin = f16(x, 2)
        for s in 0..<8 {
            let (scale, min) = scaleMin(x, at: 4, s)
            let d1 = d * Float(scale), m1 = dmin * Float(min)
            let (c, n) = (s / 2, s % 2)
            for l in 0..<32 {
                let low = (u8(x, 48 + 32 * c + l) >> UInt8(4 * n)) & 0x0F
                let high = (u8(x, 16 + l) >> UInt8(s)) & 1
                y[32 * s + l] = d1 * Float(low | high << 4) - m1
            }
        }
    }

    /// ql[128] (low nibbles), qh[64] (2 high bits), scales[16] (int8), d (f16); q - 32.
    /// Element 128h + r: nibble r/64 of ql[64h + r%64], bits 2(r/32) of qh[32h + r%32].
    private static func q6_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 208)
        for h in 0..<2 {
            for r in 0..<128 {
                let i = 128 * h + r
                let low = (u8(x, 64 * h + r % 64) >> UInt8(4 * (r / 64))) & 0x0F
                let high = (u8(x, 128 + 32 * h + r % 32) >> UInt8(2 * (r / 32))) & 3
                let scale = Float(Int8(bitPattern: u8(x, 192 + i / 16)))
                y[i] = d * scale * Float(Int32(low | high << 4) - 32)
            }
        }
    }

    /// d (f16), scales_h (u16, 2 bits per sub-block), scales_l[4] (nibbles), qs[128]:
    /// eight sub-blocks of 32 laid out as IQ4_NL blocks, each with a 6-bit scale - 32.
    private static func iq4_XS(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 0), scalesHigh = u16(x, 2)
        for s in 0..<8 {
            let low = (u8(x, 4 + s / 2) >> UInt8(4 * (s % 2))) & 0x0F
            let high = UInt8((scalesHigh >> UInt16(2 * s)) & 3)
            let dl = d * Float(Int32(low | high << 4) - 32)
            for j in 0..<16 {
                let q = u8(x, 8 + 16 * s + j)
                y[32 * s + j] = dl * Float(kvaluesIQ4NL[Int(q & 0x0F)])
                y[32 * s + j + 16] = dl * Float(kvaluesIQ4NL[Int(q >> 4)])
            }
        }
    }

    /// qs[48] and qh[4] hold base-3 digits as fixed-point fractions of 256, d (f16) at 52.
    /// Multiplying a byte by 3^k (mod 256) brings digit k to the top; (byte * 3) >> 8 reads it.
    private static func tq1_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 52)
        @inline(__always) func trit(_ byte: UInt8, _ k: Int) -> Float {
            var shifted = byte
            for _ in 0..<k { shifted = shifted &* 3 }
            return Float(Int32((UInt16(shifted) * 3) >> 8) - 1)
        }
        for k in 0..<5 {
            for l in 0..<32 { y[32 * k + l] = d * trit(u8(x, l), k) }
        }
        for k in 0..<5 {
            for l in 0..<16 { y[160 + 16 * k + l] = d * trit(u8(x, 32 + l), k) }
        }
        for k in 0..<4 {
            for l in 0..<4 { y[240 + 4 * k + l] = d * trit(u8(x, 48 + l), k) }
        }
    }

    /// qs[64] (2 bits, laid out as Q2_K's), d (f16); q - 1.
    private static func tq2_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = f16(x, 64)
        for h in 0..<2 {
            for j in 0..<4 {
                for l in 0..<32 {
                    let q = (u8(x, 32 * h + l) >> UInt8(2 * j)) & 3
                    y[128 * h + 32 * j + l] = d * Float(Int32(q) - 1)
                }
            }
        }
    }

    private static let kvaluesIQ4NL: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
    private static let kvaluesMXFP4: [Int8] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]
}

// MARK: Little-endian field reads at any byte offset

@inline(__always) fileprivate func u8(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    p.load(fromByteOffset: offset, as: UInt8.self)
}

@inline(__always) fileprivate func u16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

@inline(__always) fileprivate func u32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) fileprivate func f16(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: u16(p, offset)))
}
