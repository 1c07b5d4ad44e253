import XCTest
@testable import Runtime

/// Invalid UTF-8 becomes one U+FFFD per maximal invalid subpart, Rust's `String::from_utf8_lossy`
/// rule (Python's `errors="replace"` follows the same one; the expectations below come from it).
final class TokenizerUTF8Tests: XCTestCase {
    func testReplacementFollowsTheMaximalSubpartRule() {
        let table: [(input: String, output: String)] = [
            ("e4b8", "efbfbd"),                        // truncated 3-byte sequence: one U+FFFD
            ("e4b8ad", "e4b8ad"),                      // 中
            ("ff", "efbfbd"),
            ("c0af", "efbfbdefbfbd"),                  // overlong lead: each byte
            ("eda080", "efbfbdefbfbdefbfbd"),          // UTF-16 surrogate: each byte
            ("f4908080", "efbfbdefbfbdefbfbdefbfbd"),  // above U+10FFFF
            ("f09f98", "efbfbd"),
            ("61e4b862", "61efbfbd62"),
            ("e080", "efbfbdefbfbd"),
            ("c2c2", "efbfbdefbfbd"),
            ("80bf", "efbfbdefbfbd"),
            ("ed9fbf", "ed9fbf"),
            ("f48fbfbf", "f48fbfbf"),
            ("e4b8e4b8ad", "efbfbde4b8ad"),
        ]
        func bytes(_ hex: String) -> [UInt8] {
            let digits = Array(hex.utf8)
            return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16)! }
        }
        for (input, output) in table {
            XCTAssertEqual(LossyUTF8.repaired(bytes(input)), bytes(output), input)
            XCTAssertEqual(LossyUTF8.isValid(bytes(input)), input == output, input)
        }
    }
}
