/// exp over buffers, eight lanes at a time: Cephes' expf (range reduction by ln 2 in two parts,
/// a degree-6 polynomial, the exponent by bit arithmetic), within 2 ulp of expf on [-87, 88].
/// Softmax and SiLU spend most of their time here; the scalar expf is several times slower.
public enum VectorExp {
    typealias F8 = SIMD8<Float>

    @inline(__always)
    static func exp(_ x: F8) -> F8 {
        // Written with operations that lower to vector instructions: `.clamped`, `.rounded` and
        // SIMD Int32 conversion do not, and were slower than scalar expf.
        let clamped = pointwiseMin(pointwiseMax(x, F8(repeating: -87.3)), F8(repeating: 88.7))
        let magic = F8(repeating: 12_582_912)  // 1.5 · 2^23: adding it rounds to the nearest integer
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        var r = clamped - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = F8(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * r * r + r + 1
        // The low mantissa bits of `shifted` hold n, as 0x4B400000 + n.
        let bits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        return p * unsafeBitCast((bits &+ 127) &<< 23, to: F8.self)
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> F8 { UnsafeRawPointer(p).loadUnaligned(as: F8.self) }

    @inline(__always)
    static func store(_ v: F8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self) }

    /// x[i] = exp(x[i] - shift); returns the sum of the results.
    @inline(__always)
    public static func expShiftedSum(_ x: UnsafeMutablePointer<Float>, count: Int, shift: Float) -> Float {
        var sum = F8.zero
        var i = 0
        while i + 8 <= count {
            let e = exp(load(x + i) - shift)
            store(e, x + i)
            sum += e
            i += 8
        }
        var total = sum.sum()
        while i < count {
            let e = exp(F8(repeating: x[i] - shift))[0]
            x[i] = e
            total += e
            i += 1
        }
        return total
    }

    /// out[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + exp(-g)).
    @inline(__always)
    public static func swiglu(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + 8 <= count {
            let g = load(gate + i)
            store(g / (1 + exp(-g)) * load(up + i), out + i)
            i += 8
        }
        while i < count {
            let g = gate[i]
            out[i] = g / (1 + exp(F8(repeating: -g))[0]) * up[i]
            i += 1
        }
    }
}
