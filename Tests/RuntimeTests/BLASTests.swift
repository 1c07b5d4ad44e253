import XCTest
@testable import Runtime

/// Proves OpenBLAS is linked and our wrappers pass the right leading dimensions.
final class BLASTests: XCTestCase {
    func testLinearLayerProductAgainstHandComputedValues() {
        // x [2,3], W [4,3] stored [out, in]: y = x·Wᵀ is [2,4].
        let x: [Float] = [1, 2, 3,
                          4, 5, 6]
        let w: [Float] = [1, 0, 0,
                          0, 1, 0,
                          0, 0, 1,
                          1, -1, 2]
        var y = [Float](repeating: .nan, count: 8)
        BLAS.matmulTransposedB(x, w, &y, m: 2, n: 4, k: 3)
        XCTAssertEqual(y, [1, 2, 3, 5,
                           4, 5, 6, 11])
    }

    func testPlainProductWithAlphaAndBeta() {
        // A [2,2] · B [2,3], then C = 2·A·B + 1·C.
        let a: [Float] = [1, 2,
                          3, 4]
        let b: [Float] = [5, 6, 7,
                          8, 9, 10]
        var c: [Float] = [1, 1, 1,
                          1, 1, 1]
        BLAS.matmul(a, b, &c, m: 2, n: 3, k: 2, alpha: 2, beta: 1)
        // A·B = [[21, 24, 27], [47, 54, 61]]
        XCTAssertEqual(c, [43, 49, 55,
                           95, 109, 123])
    }

    func testThreadCountIsSettable() {
        BLAS.setThreads(1)
        XCTAssertEqual(BLAS.threads, 1)
        BLAS.setThreads(2)
        XCTAssertEqual(BLAS.threads, min(2, ProcessInfo.processInfo.activeProcessorCount > 0 ? 2 : 1))
        XCTAssertTrue(BLAS.configuration.hasPrefix("OpenBLAS"), BLAS.configuration)
    }
}
