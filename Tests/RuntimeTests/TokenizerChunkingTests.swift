import Foundation
import XCTest
@testable import Runtime

/// Long texts are split a chunk at a time (cut after a line feed, before a scalar that is not
/// white space) and pre-tokenized word by word; the result must be the whole text's, exactly.
final class TokenizerChunkingTests: XCTestCase {
    /// Texts dense in what the split patterns look ahead at around a cut: line breaks (LF, CRLF,
    /// runs), spaces before and after them, apostrophes, digits, punctuation, non-ASCII letters
    /// and non-ASCII white space.
    static func texts(count: Int, seed: UInt64) -> [[UInt8]] {
        let atoms = ["\n", "\r\n", "\n\n", " ", "  ", "\t", "'s", "'ll", "'", "a", "Word", "x", "42", "1234567",
                     "!", "?!", ".", "\u{00A0}", "\u{2028}", "é", "日本", "٣", "\u{3000}", "--", "\u{1F600}"]
        var state = seed
        func next() -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33)
        }
        return (0..<count).map { _ in
            let length = 1 + next() % 200
            return Array((0..<length).map { _ in atoms[next() % atoms.count] }.joined().utf8)
        }
    }

    func testChunkedSplitMatchesAreTheWholeTextsMatches() {
        let regexes: [SplitRegex] = [.gpt2, .cl100k(maxDigits: 3), .cl100k(maxDigits: 1)]
        var compared = 0
        for text in Self.texts(count: 400, seed: 7) {
            for regex in regexes {
                let whole = regex.matches(in: text, chunkBytes: text.count + 1)
                XCTAssertEqual(whole.first?.lowerBound, text.isEmpty ? nil : 0)
                XCTAssertEqual(whole.last?.upperBound, text.isEmpty ? nil : text.count, "the matches tile the text")
                for chunk in [1, 2, 5, 16] {
                    XCTAssertEqual(regex.matches(in: text, chunkBytes: chunk), whole, "\(regex) chunk \(chunk): \(String(decoding: text, as: UTF8.self).debugDescription)")
                    compared += 1
                }
            }
        }
        XCTAssertEqual(compared, 400 * 3 * 4)
    }

    func testCutsFallAfterALineFeedBeforeNonSpaceOrAfterALetterBeforeASpace() {
        let text = Array("1\n cd e\n\n!f\r\n?h 2 é x".utf8)
        XCTAssertEqual(SplitRegex.nextCut(in: text, from: 0), 5, "after 'd', before a space")
        XCTAssertEqual(SplitRegex.nextCut(in: text, from: 6), 9, "after the second line feed, before '!'")
        XCTAssertEqual(SplitRegex.nextCut(in: text, from: 10), 13, "after CRLF, before '?'")
        XCTAssertEqual(SplitRegex.nextCut(in: text, from: 14), 15, "after 'h', before a space")
        XCTAssertEqual(SplitRegex.nextCut(in: text, from: 16), text.count, "not after a digit or a non-ASCII letter")
    }

    func testALongTextEncodesAsItsLinesDo() throws {
        // Lines that start with a non-space character begin a word each in these tokenizers, so
        // the ids of the whole text are the ids of its lines, in order: chunking changes nothing.
        for name in ["llama3-byte-level", "split-qwen2-regex"] {
            let tokenizer = try Tokenizer(directory: TokenizerFixtures.tokenizers.appendingPathComponent(name))
            let lines = Self.texts(count: 3000, seed: 11).map { "L" + String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ") + "\n" }
            let text = lines.joined()
            XCTAssertGreaterThan(text.utf8.count, 4 * SplitRegex.chunkBytes, "several chunks")
            let expected = lines.flatMap { tokenizer.encode($0, addSpecialTokens: false) }
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), expected, name)
        }
    }
}
