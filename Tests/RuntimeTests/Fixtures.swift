import Foundation
import XCTest

/// Paths to Tests/Fixtures (a copy of ../shared/golden and friends) and readers for its formats.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    static let golden = root.appendingPathComponent("golden")
    static let tinyModel = golden.appendingPathComponent("tiny")

    /// A little-endian float32 .npy array: its shape and values.
    static func npy(_ name: String) throws -> (shape: [Int], values: [Float]) {
        try npy(at: golden.appendingPathComponent(name))
    }

    static func npy(at url: URL) throws -> (shape: [Int], values: [Float]) {
        let data = try Data(contentsOf: url)
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False") else {
            throw NSError(domain: "npy", code: 1, userInfo: [NSLocalizedDescriptionKey: "unsupported npy header \(header)"])
        }
        let shapeText = header.components(separatedBy: "'shape': (")[1].components(separatedBy: ")")[0]
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let body = data[(10 + headerLength)...]
        let values = body.withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        XCTAssertEqual(values.count, shape.reduce(1, *))
        return (shape, values)
    }

    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: golden.appendingPathComponent(name))) as! [String: Any]
    }

}

extension XCTestCase {
    /// A fresh directory, removed when the test ends.
    func temporaryDirectory(_ label: String = #function) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loramd-tests-\(label.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// max |a - b| over two equally long arrays.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}
