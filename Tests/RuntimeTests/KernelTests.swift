import CKernels
import Foundation
import XCTest
@testable import Runtime

/// The C kernels (AVX2/FMA on this machine) against double-precision definitions, on rows wide
/// enough to use the vector path and with tails that use the scalar one.
final class KernelTests: XCTestCase {
    func testSoftmaxAgainstDoubleWithMaskingAndExtremes() {
        for width in [1, 7, 8, 37, 300] {
            var rng = SystemRandomNumberGenerator()
            let raw = (0..<(width * 3)).map { _ in Float.random(in: -120...60, using: &rng) }
            var rows = raw
            rows.withUnsafeMutableBufferPointer { lk_softmax_causal($0.baseAddress!, width, 0, 3, max(1, width - 2)) }
            for r in 0..<3 {
                let valid = min(width, max(1, width - 2) + r)
                let row = raw[(r * width)..<(r * width + valid)].map(Double.init)
                let m = row.max()!
                let total = row.map { exp($0 - m) }.reduce(0, +)
                for j in 0..<valid {
                    XCTAssertEqual(Double(rows[r * width + j]), exp(row[j] - m) / total, accuracy: 1e-6, "width \(width) row \(r) col \(j)")
                }
                for j in valid..<width { XCTAssertEqual(rows[r * width + j], 0, "masked positions are exactly zero") }
            }
        }
    }

    func testSwiGLU() {
        let n = 1003
        let gate: [Float] = (0..<n).map { Float($0) * 0.21 - 105 }, up: [Float] = (0..<n).map { Float($0 % 17) * 0.25 - 2 }
        var out = [Float](repeating: 0, count: n)
        SwiGLU.forward(gate: gate, up: up, out: &out, count: n)
        for i in 0..<n {
            let g = Double(gate[i])
            let reference = g / (1 + exp(-g)) * Double(up[i])
            XCTAssertEqual(Double(out[i]), reference, accuracy: 2e-6 * max(1, abs(reference)), "index \(i)")
        }
    }

    func testRMSNormRowsSplitAcrossThreads() {
        Parallel.threads = 2
        let rows = 300, cols = 259
        let x: [Float] = (0..<(rows * cols)).map { sin(Float($0)) * 3 }, w: [Float] = (0..<cols).map { 1 + Float($0) / 1000 }
        var out = [Float](repeating: 0, count: rows * cols)
        RMSNorm.forward(x, weight: w, out: &out, rows: rows, cols: cols, eps: 1e-5)
        for r in [0, 149, 150, 299] {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let scale = 1 / (row.map { $0 * $0 }.reduce(0, +) / Double(cols) + 1e-5).squareRoot()
            for c in 0..<cols {
                XCTAssertEqual(Double(out[r * cols + c]), row[c] * scale * Double(w[c]), accuracy: 1e-5, "row \(r) col \(c)")
            }
        }
    }
}

extension KernelTests {
    /// lk_narrow_bf16 rounds to nearest even exactly as `DTypeConversion.floatToBF16` (PyTorch's
    /// `.to(torch.bfloat16)`) on ties, carries into the exponent, infinities and NaN; lk_widen16
    /// gives the rounded values back exactly.
    func testNarrowingToBF16RoundsToNearestEven() {
        var values: [Float] = [0, -0, 1, -1, 1.00390625, 1.01171875, 1.0078125, 3.4e38, .infinity, -.infinity, .nan,
                               Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3FFF_FFFF), 1e-40]
        var rng = Xoshiro256StarStar(seed: 1)
        values += (0..<1000).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
        var halves = [UInt16](repeating: 0, count: values.count)
        var back = [Float](repeating: 0, count: values.count)
        lk_narrow_bf16(values, &halves, 0, values.count)
        lk_widen16(halves, 1, &back, 0, values.count)
        for (i, value) in values.enumerated() {
            XCTAssertEqual(halves[i], DTypeConversion.floatToBF16(value), "\(value) (0x\(String(value.bitPattern, radix: 16)))")
            if value.isNaN { XCTAssertTrue(back[i].isNaN) } else { XCTAssertEqual(back[i], DTypeConversion.bf16ToFloat(halves[i])) }
        }
    }
}

extension KernelTests {
    /// Decode's attention for one query row (lk_attend_one) against a double-precision softmax
    /// average: head sizes that take the AVX-512 path (multiples of 16) and the AVX2 one, and
    /// visible lengths below, at and past the sixteen keys scored together, with a partial last
    /// group. Errors measured: below 5e-8.
    func testOneRowAttentionAgainstDouble() {
        var random = Xoshiro256StarStar(seed: 7)
        func value() -> Float { Float(Double(random.next() % 20_001) / 10_000 - 1) }
        for d in [8, 16, 24, 64, 80, 128] {
            for visible in [1, 15, 16, 17, 47, 333] {
                let q = (0..<d).map { _ in 3 * value() }, keys = (0..<(visible * d)).map { _ in value() }
                let values = (0..<(visible * d)).map { _ in value() }
                var scores = [Float](repeating: 0, count: visible), out = [Float](repeating: 0, count: d)
                lk_attend_one(q, keys, values, d, visible, 1 / Float(d).squareRoot(), &scores, &out)
                let logits = (0..<visible).map { j in (0..<d).reduce(0.0) { $0 + Double(q[$1]) * Double(keys[j * d + $1]) } / Double(d).squareRoot() }
                let top = logits.max()!, weights = logits.map { exp($0 - top) }, total = weights.reduce(0, +)
                for i in 0..<d {
                    let reference = (0..<visible).reduce(0.0) { $0 + weights[$1] / total * Double(values[$1 * d + i]) }
                    XCTAssertEqual(Double(out[i]), reference, accuracy: 1e-6, "d \(d) visible \(visible) lane \(i)")
                }
            }
        }
    }
}
