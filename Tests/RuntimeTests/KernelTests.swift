import Foundation
import XCTest
@testable import Runtime

/// Kernels against their scalar definitions.
final class KernelTests: XCTestCase {
    func testVectorExpIsWithinTwoUlpOfExpf() {
        var worst: Float = 0
        var x: Float = -87
        while x < 88 {
            let values = (0..<8).map { x + Float($0) * 0.0013 }
            let vector = VectorExp.exp(SIMD8<Float>(values))
            for (i, v) in values.enumerated() {
                let reference = expf(v)
                worst = max(worst, abs(vector[i] - reference) / reference.ulp)
            }
            x += 0.0117
        }
        XCTAssertLessThanOrEqual(worst, 2, "worst error \(worst) ulp")
    }

    func testSoftmaxSumsToOneAndMasks() {
        var row: [Float] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 99]
        row.withUnsafeMutableBufferPointer { CausalAttention.softmaxCausal($0.baseAddress!, valid: 11, width: 12) }
        XCTAssertEqual(row.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertEqual(row[11], 0, "masked positions are exactly zero")
        let exact = (1...11).map { exp(Double($0) - 11) }
        let total = exact.reduce(0, +)
        for j in 0..<11 { XCTAssertEqual(Double(row[j]), exact[j] / total, accuracy: 1e-7) }
    }

    func testSwiGLU() {
        let gate: [Float] = (0..<19).map { Float($0) - 9.5 }, up: [Float] = (0..<19).map { Float($0) * 0.25 }
        var out = [Float](repeating: 0, count: 19)
        SwiGLU.forward(gate: gate, up: up, out: &out, count: 19)
        for i in 0..<19 {
            let g = Double(gate[i])
            let reference = g / (1 + exp(-g)) * Double(up[i])
            XCTAssertEqual(Double(out[i]), reference, accuracy: 1e-6 * max(1, abs(reference)))
        }
    }
}
