import MemoryPlanner
import XCTest
@testable import Runtime

/// `matmulDtype: "bf16"`: products of several rows against a frozen weight in bf16 with fp32 sums
/// (Intel AMX). Each product is checked against a double-precision sum of the same bf16-rounded
/// operands; the training step against the golden gradients and against fp32's losses. Where the
/// CPU has no AMX, bf16 runs as f32, bit for bit, and the AMX checks are skipped.
final class MatmulDTypeTests: XCTestCase {
    func values(_ count: Int, seed: UInt64) -> [Float] {
        var random = Xoshiro256StarStar(seed: seed)
        return (0..<count).map { _ in Float(Double(random.next() % 20_001) / 10_000 - 1) }
    }

    func rounded(_ x: Float) -> Double { Double(DTypeConversion.bf16ToFloat(DTypeConversion.floatToBF16(x))) }

    /// out (rows × cols, from `start` when `accumulate`) against, per element, Σ_e left(r, e)·right(c, e)
    /// over `depth` with both factors bf16-rounded, in doubles: within 1e-5 of Σ|terms| (fp32 sums).
    func checkRoundedSums(_ out: [Float], start: [Float], accumulate: Bool, rows: Int, cols: Int, depth: Int,
                          left: (Int, Int) -> Float, right: (Int, Int) -> Float, _ label: String) {
        for r in 0..<rows {
            for c in 0..<cols {
                var sum = accumulate ? Double(start[r * cols + c]) : 0, size = abs(sum)
                for e in 0..<depth {
                    let term = rounded(left(r, e)) * rounded(right(c, e))
                    sum += term
                    size += abs(term)
                }
                XCTAssertEqual(Double(out[r * cols + c]), sum, accuracy: 1e-5 * size, "\(label) [\(r), \(c)]")
            }
        }
    }

    /// y = x·Wᵀ (+ y) and dx = dy·W (+ dx), for bf16, fp32 and f16 (widened first) weights. Shapes
    /// reach tile edges (37 rows, 70 columns, depth 100) and several depth passes (2,100).
    func testBF16ProductsAreTheRoundedOperandsSummedInFP32() throws {
        try XCTSkipUnless(MatmulDType.amxAvailable, "no AMX-BF16 on this machine: bf16 runs as f32 (testWithoutAMX…)")
        for dtype in [TensorDType.bf16, .f32, .f16] {
            for (t, n, k) in [(37, 70, 100), (64, 96, 576), (33, 40, 2100), (2, 17, 5)] {
                let w = Weight(rows: n, cols: k, dtype: dtype)
                values(n * k, seed: 5).withUnsafeBufferPointer { w.assign($0.baseAddress!) }
                let wide = w.toArray()
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: n * k)
                defer { scratch.deallocate() }
                for accumulate in [false, true] {
                    let x = values(t * k, seed: 9), start = values(t * n, seed: 10)
                    var y = start
                    Linear.forward(x, rows: t, weight: w, out: &y, accumulate: accumulate, scratch: scratch, scratchCount: n * k, matmul: .bf16)
                    checkRoundedSums(y, start: start, accumulate: accumulate, rows: t, cols: n, depth: k,
                                     left: { x[$0 * k + $1] }, right: { wide[$0 * k + $1] }, "forward \(dtype) \(t)x\(n)x\(k)")
                    let dy = values(t * n, seed: 11), dxStart = values(t * k, seed: 12)
                    var dx = dxStart
                    Linear.backwardInput(dy: dy, rows: t, weight: w, dx: &dx, accumulate: accumulate, scratch: scratch, scratchCount: n * k,
                                         matmul: .bf16)
                    checkRoundedSums(dx, start: dxStart, accumulate: accumulate, rows: t, cols: k, depth: n,
                                     left: { dy[$0 * n + $1] }, right: { wide[$1 * k + $0] }, "input gradient \(dtype) \(t)x\(n)x\(k)")
                }
            }
        }
    }

    /// Without AMX (or with LORAMD_NO_AMX), bf16 is f32: the same products, bit for bit.
    func testWithoutAMXBF16RunsAsF32() {
        XCTAssertEqual(MatmulDType.bf16.effective, MatmulDType.amxAvailable ? .bf16 : .f32)
        XCTAssertEqual(MatmulDType.f32.effective, .f32)
        guard !MatmulDType.amxAvailable else { return }
        let w = Weight(rows: 30, cols: 40, dtype: .bf16)
        values(1200, seed: 1).withUnsafeBufferPointer { w.assign($0.baseAddress!) }
        let x = values(5 * 40, seed: 2), scratch = UnsafeMutablePointer<Float>.allocate(capacity: 1200)
        defer { scratch.deallocate() }
        var a = [Float](repeating: 0, count: 150), b = a
        Linear.forward(x, rows: 5, weight: w, out: &a, scratch: scratch, scratchCount: 1200, matmul: .f32)
        Linear.forward(x, rows: 5, weight: w, out: &b, scratch: scratch, scratchCount: 1200, matmul: .bf16)
        XCTAssertEqual(a, b)
    }

    /// The golden LoRA step (fp32 tiny LLaMA, PEFT's gradients) with bf16 products: the loss within
    /// 2e-3 (relative) and every gradient within 3e-2 · max|ref|. Both operands of every frozen
    /// product lose up to 2^-9 of themselves, so these are bf16 autocast's tolerances, not fp32's
    /// (2e-5 · max|ref|, which the f32 run still meets here).
    func testTheGoldenStepWithBF16ProductsStaysWithinBF16Tolerances() throws {
        try XCTSkipUnless(MatmulDType.amxAvailable, "no AMX-BF16 on this machine")
        let golden = try TrainingGradientTests.tensors("tiny_lora_grads.safetensors")
        let maxReference = golden.values.flatMap { $0 }.map(abs).max()!
        func step(_ matmul: MatmulDType) throws -> (worst: Float, loss: Double) {
            let (gradients, loss) = try TrainingGradientTests.goldenStep(matmul: matmul)
            return (try TrainingGradientTests.worstGoldenDifference(gradients, golden), loss)
        }
        let (full, half) = (try step(.f32), try step(.bf16))
        print("golden step, worst |d| / max|ref|: f32 products \(full.worst / maxReference), bf16 \(half.worst / maxReference); loss \(full.loss) vs \(half.loss)")
        XCTAssertLessThanOrEqual(full.worst, 2e-5 * maxReference)
        XCTAssertLessThanOrEqual(half.worst, 3e-2 * maxReference)
        XCTAssertNotEqual(half.worst, full.worst, "the bf16 run took the AMX products")
        XCTAssertEqual(half.loss, full.loss, accuracy: 2e-3 * abs(full.loss))
    }

    /// Twelve LoRA steps on a small random model: losses within 5e-3 (relative) of fp32 products'.
    func testBF16ProductsTrainAsFP32ProductsDo() throws {
        try XCTSkipUnless(MatmulDType.amxAvailable, "no AMX-BF16 on this machine")
        let full = try RemadeActivationsTests.twelveStepLosses { $0.matmulDType = .f32 }
        let half = try RemadeActivationsTests.twelveStepLosses { $0.matmulDType = .bf16 }
        let worst = zip(full, half).map { abs($0 - $1) / $0 }.max()!
        print("12 steps: losses f32 products \(full.first!) -> \(full.last!), bf16 \(half.first!) -> \(half.last!), worst relative |d| \(worst)")
        XCTAssertLessThanOrEqual(worst, 5e-3)
        XCTAssertLessThan(half.last!, half.first!, "training lowers the loss")
    }
}
