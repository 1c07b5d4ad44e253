import Foundation
import XCTest
@testable import Runtime

/// Encoding is linear in the text: 100 KB goes through well within a debug build's budget, for a
/// byte-level tokenizer and for a SentencePiece-style one, which has no pre-tokenizer and so
/// merges the whole text as one word (a quadratic merge loop would take minutes here).
final class TokenizerPerformanceTests: XCTestCase {
    static let text: String = {
        var text = ""
        while text.utf8.count < 100_000 { text += TokenizerBuilder.builtInCorpus }
        return String(decoding: Array(text.utf8.prefix(100_000)), as: UTF8.self)
    }()

    func assertEncodesQuickly(_ tokenizer: Tokenizer, _ label: String) {
        let start = Date()
        let ids = tokenizer.encode(Self.text, addSpecialTokens: false)
        let seconds = Date().timeIntervalSince(start)
        print("\(label): 100 KB -> \(ids.count) ids in \(String(format: "%.3f", seconds)) s (\(Int(100_000 / seconds)) chars/s)")
        XCTAssertLessThan(seconds, 60, label)  // a hang (quadratic merging takes minutes), not a speed bound
        XCTAssertEqual(tokenizer.decode(ids), Self.text, label)
    }

    func testByteLevelEncodesOneHundredKilobytes() throws {
        assertEncodesQuickly(try Tokenizer(tokenizerJSON: TokenizerBuilderTests.built4096.get()), "builder 4096")
        assertEncodesQuickly(try Tokenizer(directory: TokenizerFixtures.tokenizers.appendingPathComponent("llama3-byte-level")), "llama3-byte-level")
    }

    func testSentencePieceEncodesOneHundredKilobytesAsOneWord() throws {
        assertEncodesQuickly(try Tokenizer(directory: TokenizerFixtures.tokenizers.appendingPathComponent("llama2-sentencepiece")), "llama2-sentencepiece")
    }
}

/// One tokenizer serves concurrent requests: its only mutable state is the locked word cache.
final class TokenizerConcurrencyTests: XCTestCase {
    func testConcurrentEncodesAgreeWithSerialOnes() throws {
        let tokenizer = try Tokenizer(tokenizerJSON: TokenizerBuilderTests.built4096.get())
        let paragraphs = TokenizerBuilder.builtInCorpus.components(separatedBy: "\n\n")
        let serial = try Tokenizer(tokenizerJSON: TokenizerBuilderTests.built4096.get())
        let expected = paragraphs.map { serial.encode($0) }
        let results = UnsafeMutableBufferPointer<[Int]>.allocate(capacity: paragraphs.count)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: paragraphs.count) { results[$0] = tokenizer.encode(paragraphs[$0]) }
        XCTAssertEqual(Array(results), expected)
    }
}
