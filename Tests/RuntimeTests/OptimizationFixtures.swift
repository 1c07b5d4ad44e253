import Foundation
import XCTest
@testable import Runtime

/// Readers for Tests/Fixtures/optimizer (made by scripts/make-optimizer-fixtures.py with torch).
enum OptimizerFixtures {
    static let root = Fixtures.root.appendingPathComponent("optimizer")

    /// Every F32 tensor of a safetensors file by name, and its header metadata.
    static func tensors(_ url: URL) throws -> (tensors: [String: [Float]], metadata: [String: String]) {
        let file = try SafetensorsFile(url: url)
        var out: [String: [Float]] = [:]
        for (name, info) in file.tensors {
            XCTAssertEqual(info.dtype, .f32, name)
            let bytes = file.bytes(of: info)
            out[name] = (0..<info.elementCount).map { bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        return (out, file.metadata)
    }

    /// A JSON object from a string (fixtures keep numbers as Python repr strings, parsed exactly by Double(_:)).
    static func object(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    static func double(_ value: Any?) throws -> Double {
        try XCTUnwrap((value as? String).flatMap(Double.init), "not a number string: \(String(describing: value))")
    }
}

/// The distance between two floats in units in the last place (0: identical bits; ±0 count as equal).
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    if a == b { return 0 }
    if a.isNaN || b.isNaN { return Int.max }
    func ordered(_ x: Float) -> Int {
        let magnitude = Int(x.bitPattern & 0x7FFF_FFFF)
        return x.sign == .minus ? -magnitude : magnitude
    }
    return abs(ordered(a) - ordered(b))
}

func maxUlpDistance(_ a: [Float], _ b: [Float]) -> Int {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, ulpDistance($1.0, $1.1)) }
}
