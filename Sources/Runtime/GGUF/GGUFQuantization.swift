/// fp32 values encoded as a ggml type, byte for byte as gguf-py's `gguf.quants.quantize` does
/// (whose Q8_0 is in turn ggml's reference `quantize_row_q8_0`): F32, F16 and BF16 round to
/// nearest even; Q8_0 rounds half away from zero; Q4_0/Q4_1/Q5_0/Q5_1 truncate `x * id + 0.5`
/// (offset by the zero point) and clamp. The arithmetic stays in fp32 in gguf-py's order.
public enum GGUFQuantization {
    /// `values.count` must be a whole number of `type` blocks and `type.isEncodable`.
    public static func quantize(_ values: UnsafeBufferPointer<Float>, as type: GGUFTensorType) -> [UInt8] {
        precondition(type.isEncodable, "\(type.name) has no encoder")
        precondition(values.count % type.blockSize == 0, "\(values.count) values is not a whole number of \(type.name) blocks")
        let blocks = values.count / type.blockSize
        var out = [UInt8](repeating: 0, count: blocks * type.typeSize)
        out.withUnsafeMutableBytes { raw in
            guard let o = raw.baseAddress, let x = values.baseAddress else { return }
            switch type {
            case .f32:
                for i in 0..<values.count { store(x[i].bitPattern, o, 4 * i) }
            case .f16:
                for i in 0..<values.count { store(Float16(x[i]).bitPattern, o, 2 * i) }
            case .bf16:
                for i in 0..<values.count { store(bf16(x[i]), o, 2 * i) }
            default:
                for b in 0..<blocks {
                    let block = x + b * type.blockSize, y = o + b * type.typeSize
                    switch type {
                    case .q8_0: q8_0(block, y)
                    case .q4_0: q4_0(block, y)
                    case .q4_1: q4_1(block, y)
                    case .q5_0: q5_0(block, y)
                    case .q5_1: q5_1(block, y)
                    default: preconditionFailure("\(type.name) is marked encodable but has no encoder")
                    }
                }
            }
        }
        return out
    }

    /// ggml_compute_fp32_to_bf16: NaNs made quiet, then round to nearest even.
    static func bf16(_ x: Float) -> UInt16 {
        var n = x.bitPattern
        if n & 0x7FFF_FFFF > 0x7F80_0000 { n = (n & 0xFFFF_0000) | (64 << 16) }
        return UInt16(truncatingIfNeeded: (UInt64(n) + UInt64(0x7FFF + ((n >> 16) & 1))) >> 16)
    }

    /// d = max|x| / 127, q = round(x / d), half away from zero.
    private static func q8_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, y, 0)
        for j in 0..<32 {
            let q = (x[j] * id).rounded(.toNearestOrAwayFromZero)
            y.storeBytes(of: UInt8(bitPattern: Int8(clamping: Int(clampedToInt: q))), toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// The element of largest magnitude, with its sign (the first one on ties, as argmax).
    private static func signedAbsMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var best: Float = 0, bestAbs: Float = -1
        for j in 0..<n where abs(x[j]) > bestAbs { (best, bestAbs) = (x[j], abs(x[j])) }
        return best
    }

    private static func minMax(_ x: UnsafePointer<Float>, _ n: Int) -> (Float, Float) {
        var lo = x[0], hi = x[0]
        for j in 1..<n { lo = min(lo, x[j]); hi = max(hi, x[j]) }
        return (lo, hi)
    }

    /// trunc(v) as an unsigned code in 0...top (gguf-py: astype(uint8) then clip); NaN gives 0.
    @inline(__always) private static func code(_ v: Float, _ top: Float) -> UInt8 {
        guard v > 0 else { return 0 }
        return v < top ? UInt8(v.rounded(.towardZero)) : UInt8(top)
    }

    /// d = signed max / -8, q = trunc(x / d + 8.5) in 0...15; nibble j | nibble j+16 << 4.
    private static func q4_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        let d = signedAbsMax(x, 32) / -8
        let id: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, y, 0)
        for j in 0..<16 {
            let q0 = code(x[j] * id + 8.5, 15), q1 = code(x[j + 16] * id + 8.5, 15)
            y.storeBytes(of: q0 | q1 << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    }

    /// d = (max - min) / 15, m = min, q = trunc((x - min) / d + 0.5) in 0...15.
    private static func q4_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        let (lo, hi) = minMax(x, 32)
        let d = (hi - lo) / 15
        let id: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, y, 0)
        store(Float16(lo).bitPattern, y, 2)
        for j in 0..<16 {
            let q0 = code((x[j] - lo) * id + 0.5, 15), q1 = code((x[j + 16] - lo) * id + 0.5, 15)
            y.storeBytes(of: q0 | q1 << 4, toByteOffset: 4 + j, as: UInt8.self)
        }
    }

    /// Five-bit codes: the low nibbles as Q4_0, the fifth bits gathered in a u32 (bit j = element j).
    private static func pack5(_ q: (Int) -> UInt8, _ y: UnsafeMutableRawPointer, qh: Int, qs: Int) {
        var high: UInt32 = 0
        for j in 0..<32 { high |= UInt32(q(j) >> 4) << UInt32(j) }
        store(high, y, qh)
        for j in 0..<16 {
            y.storeBytes(of: (q(j) & 0x0F) | (q(j + 16) & 0x0F) << 4, toByteOffset: qs + j, as: UInt8.self)
        }
    }

    /// d = signed max / -16, q = trunc(x / d + 16.5) in 0...31.
    private static func q5_0(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        let d = signedAbsMax(x, 32) / -16
        let id: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, y, 0)
        pack5({ code(x[$0] * id + 16.5, 31) }, y, qh: 2, qs: 6)
    }

    /// d = (max - min) / 31, m = min, q = trunc((x - min) / d + 0.5) in 0...31.
    private static func q5_1(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        let (lo, hi) = minMax(x, 32)
        let d = (hi - lo) / 31
        let id: Float = d == 0 ? 0 : 1 / d
        store(Float16(d).bitPattern, y, 0)
        store(Float16(lo).bitPattern, y, 2)
        pack5({ code((x[$0] - lo) * id + 0.5, 31) }, y, qh: 4, qs: 8)
    }

    @inline(__always) private static func store<T: FixedWidthInteger>(_ value: T, _ y: UnsafeMutableRawPointer, _ offset: Int) {
        y.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

private extension Int {
    /// The float's integer value, saturating (NaN gives 0) instead of trapping.
    init(clampedToInt v: Float) {
        if v.isNaN { self = 0 } else if v >= 9.2e18 { self = .max } else if v <= -9.2e18 { self = .min } else { self = Int(v) }
    }
}
