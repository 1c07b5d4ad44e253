import XCTest
@testable import Runtime

/// Global-norm clipping against torch.nn.utils.clip_grad_norm_ (Tests/Fixtures/optimizer/clip.safetensors).
/// torch sums squares in fp32 and this in Double, so the norms may differ in the last bits: the
/// norm within 2 ulps, the clipped gradients within 2 ulps (the coefficient carries the norm's
/// difference into every element).
final class OptimizationClippingTests: XCTestCase {
    func testMatchesTorch() throws {
        let (tensors, metadata) = try OptimizerFixtures.tensors(OptimizerFixtures.root.appendingPathComponent("clip.safetensors"))
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["cases"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(cases.count, 5)
        for (c, spec) in cases.enumerated() {
            let maxNorm = try OptimizerFixtures.double(spec["maxNorm"])
            var grads = (0..<(spec["tensors"] as! Int)).map { tensors["grad.\(c).\($0)"]! }
            let pointers = grads.indices.map { i -> UnsafeMutableBufferPointer<Float> in
                let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: grads[i].count)
                _ = p.initialize(from: grads[i])
                return p
            }
            defer { pointers.forEach { $0.deallocate() } }
            let total = GradientClipping.clip(pointers, maxNorm: maxNorm)
            let expectedTotal = tensors["total.\(c)"]![0]
            XCTAssertLessThanOrEqual(ulpDistance(total, expectedTotal), 2, "case \(c): \(total) vs torch \(expectedTotal)")
            for i in grads.indices {
                grads[i] = Array(pointers[i])
                XCTAssertLessThanOrEqual(maxUlpDistance(grads[i], tensors["clipped.\(c).\(i)"]!), 2, "case \(c) tensor \(i)")
            }
        }
    }

    func testUnclippedGradientsAreUntouchedAndTheNormIsReturned() {
        let values: [Float] = [3, 4]
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: 2)
        defer { buffer.deallocate() }
        _ = buffer.initialize(from: values)
        XCTAssertEqual(GradientClipping.clip([buffer], maxNorm: 10), 5)
        XCTAssertEqual(Array(buffer), values)
        XCTAssertEqual(GradientClipping.clip([buffer], maxNorm: 1), 5)
        XCTAssertEqual(Double(buffer[0]), 0.6, accuracy: 1e-6)
        XCTAssertEqual(Double(buffer[1]), 0.8, accuracy: 1e-6)
    }
}
