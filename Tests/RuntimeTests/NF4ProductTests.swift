import XCTest
@testable import Runtime

/// Decode against an NF4 weight reads the packed codes where they lie (`lk_gemv_nf4`) and gives
/// what the widened product gives: plain and double-quantized absmax, rows that start mid-block
/// and on odd elements (widths that are not multiples of the block or even), and the 64-element
/// path's blocks of several groups that straddle rows and column chunks.
final class NF4ProductTests: XCTestCase {
    func testOneRowProductsMatchTheDequantizedProduct() throws {
        for (rows, cols, blockSize, doubleQuant) in [(61, 100, 64, true), (40, 99, 32, false), (300, 576, 64, true), (5, 7, 64, false),
                                                        (7, 8224, 32, true), (3, 96, 64, false), (2, 4160, 128, true),
                                                        (7, 576, 256, true), (5, 8320, 64, false), (3, 4160, 4096, false)] {
            var random = Xoshiro256StarStar(seed: UInt64(rows * cols))
            let values = (0..<(rows * cols)).map { _ in Float(Double(random.next() % 20_001) / 10_000 - 1) }
            let nf4 = try values.withUnsafeBufferPointer {
                try NF4Tensor(quantizing: $0.baseAddress!, count: rows * cols, blockSize: blockSize, doubleQuant: doubleQuant)
            }
            let w = Weight(rows: rows, cols: cols, nf4: nf4)
            let x = (0..<(2 * cols)).map { _ in Float(Double(random.next() % 2001) / 1000 - 1) }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
            defer { scratch.deallocate() }
            var widened = [Float](repeating: 0, count: 2 * rows), direct = [Float](repeating: 1, count: rows)
            Linear.forward(x, rows: 2, weight: w, out: &widened, scratch: scratch, scratchCount: rows * cols)
            Linear.forward(x, rows: 1, weight: w, out: &direct, accumulate: true, scratch: scratch, scratchCount: rows * cols)
            let scale = max(1, widened.map(abs).max()!)
            for r in 0..<rows {
                XCTAssertEqual(direct[r], widened[r] + 1, accuracy: 1e-5 * scale, "\(rows)x\(cols) block \(blockSize) double \(doubleQuant) row \(r)")
            }
        }
    }
}
