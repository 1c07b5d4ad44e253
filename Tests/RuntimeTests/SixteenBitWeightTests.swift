import XCTest
@testable import Runtime

/// 16-bit weights read where they lie: widening is exact (the same fp32 as the scalar rule), and a
/// one-row product (decode) against a bf16, f16 (or fp32) weight gives what the widened sgemm gives.
final class SixteenBitWeightTests: XCTestCase {
    func weight(_ dtype: TensorDType, rows: Int, cols: Int) -> (Weight, [Float]) {
        var random = Xoshiro256StarStar(seed: 7)
        let values = (0..<(rows * cols)).map { _ in Float(Double(random.next() % 20_001) / 10_000 - 1) }
        let w = Weight(rows: rows, cols: cols, dtype: dtype)
        values.withUnsafeBufferPointer { w.assign($0.baseAddress!) }
        return (w, values)
    }

    func testWideningIsExact() {
        for dtype in [TensorDType.bf16, .f16] {
            // Odd lengths reach the scalar tail after the vector body.
            let (w, _) = weight(dtype, rows: 37, cols: 53)
            var fast = [Float](repeating: .nan, count: 37 * 53)
            fast.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(w.storage, dtype: dtype, count: 37 * 53, into: $0.baseAddress!) }
            let scalar = (0..<(37 * 53)).map { i -> Float in
                let bits = w.storage.load(fromByteOffset: 2 * i, as: UInt16.self)
                return dtype == .bf16 ? DTypeConversion.bf16ToFloat(bits) : Float(Float16(bitPattern: bits))
            }
            XCTAssertEqual(fast, scalar, "\(dtype)")
            // A source at an odd address (a safetensors tensor may start anywhere) widens the same.
            let odd = UnsafeMutableRawPointer.allocate(byteCount: 2 * 37 * 53 + 1, alignment: 64)
            defer { odd.deallocate() }
            (odd + 1).copyMemory(from: w.storage, byteCount: 2 * 37 * 53)
            var unaligned = [Float](repeating: .nan, count: 37 * 53)
            unaligned.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(odd + 1, dtype: dtype, count: 37 * 53, into: $0.baseAddress!) }
            XCTAssertEqual(unaligned, scalar, "\(dtype), unaligned")
        }
    }

    func testOneRowProductsMatchTheWidenedProduct() {
        // fp32 too: one row goes through lk_gemv32 where the CPU has its kernel.
        for dtype in [TensorDType.bf16, .f16, .f32] {
            // 576 and 300 x 1536: whole groups of 32 columns, more than 256 rows; 8,300 columns: x in
            // more than one 4,096-column chunk, with a tail.
            for (rows, cols) in [(61, 100), (512, 576), (3, 7), (300, 1536), (9, 8300)] {
                let (w, _) = weight(dtype, rows: rows, cols: cols)
                var random = Xoshiro256StarStar(seed: 3)
                let x = (0..<(2 * cols)).map { _ in Float(Double(random.next() % 2001) / 1000 - 1) }
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
                defer { scratch.deallocate() }
                // Two rows go through the widened sgemm; one row through the 16-bit kernel.
                var widened = [Float](repeating: 0, count: 2 * rows), direct = [Float](repeating: 1, count: rows)
                Linear.forward(x, rows: 2, weight: w, out: &widened, scratch: scratch, scratchCount: rows * cols)
                Linear.forward(x, rows: 1, weight: w, out: &direct, accumulate: true, scratch: scratch, scratchCount: rows * cols)
                let scale = widened.map(abs).max()!
                for r in 0..<rows {
                    XCTAssertEqual(direct[r], widened[r] + 1, accuracy: 1e-5 * max(1, scale), "\(dtype) \(rows)x\(cols) row \(r)")
                }
            }
        }
    }

    /// Decode's fused products (q, k, v on one input; gate, up) give each weight's own product,
    /// bit for bit, on any split of the rows across threads.
    func testFusedOneRowProductsEqualTheSeparateOnes() {
        let saved = Parallel.threads
        defer { Parallel.threads = saved }
        let (a, _) = weight(.bf16, rows: 576, cols: 576), (b, _) = weight(.f16, rows: 192, cols: 576)
        let (c, _) = weight(.bf16, rows: 1000, cols: 576)
        var random = Xoshiro256StarStar(seed: 5)
        let x = (0..<576).map { _ in Float(Double(random.next() % 2001) / 1000 - 1) }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        defer { scratch.deallocate() }
        for threads in [1, 2, 3] {
            Parallel.threads = threads
            var fa = [Float](repeating: .nan, count: 576), fb = [Float](repeating: .nan, count: 192), fc = [Float](repeating: .nan, count: 1000)
            fa.withUnsafeMutableBufferPointer { fa in fb.withUnsafeMutableBufferPointer { fb in fc.withUnsafeMutableBufferPointer { fc in
                Linear.oneRow(x, (a, fa.baseAddress!), (b, fb.baseAddress!), (c, fc.baseAddress!))
            } } }
            for (w, fused) in [(a, fa), (b, fb), (c, fc)] {
                var alone = [Float](repeating: .nan, count: w.rows)
                Linear.forward(x, rows: 1, weight: w, out: &alone, scratch: scratch, scratchCount: 0)
                XCTAssertEqual(fused, alone, "\(w.rows) rows, \(threads) threads")
            }
        }
    }
}
