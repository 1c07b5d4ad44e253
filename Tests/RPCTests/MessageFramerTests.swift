import XCTest
@testable import RPC

/// Table tests on raw bytes: what the framer emits for each input and how much it keeps pending.
final class MessageFramerTests: XCTestCase {
    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
    private func messages(_ events: [MessageFramer.Event]) -> [String] {
        events.compactMap { if case .message(let b) = $0 { return String(decoding: b, as: UTF8.self) } else { return nil } }
    }
    private func errors(_ events: [MessageFramer.Event]) -> [String] {
        events.compactMap { if case .malformed(let r) = $0 { return r } else { return nil } }
    }

    func testOneMessageAndARest() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("Content-Length: 2\r\n\r\n{}Co"))
        XCTAssertEqual(messages(events), ["{}"])
        XCTAssertEqual(framer.pendingByteCount, 2)  // "Co" waits for the rest of its header
    }

    func testSeveralMessagesInOneRead() {
        var framer = MessageFramer()
        let input = "Content-Length: 2\r\n\r\n{}Content-Length: 7\r\n\r\n[1,2,3]Content-Length: 4\r\n\r\nnull"
        XCTAssertEqual(messages(framer.feed(bytes(input))), ["{}", "[1,2,3]", "null"])
        XCTAssertTrue(framer.isIdle)
    }

    func testEveryChunkingGivesTheSameMessages() {
        let input = bytes("Content-Length: 14\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{\"a\":\"héllo\"}Content-Length: 2\r\n\r\n[]")
        for chunk in 1...input.count {
            var framer = MessageFramer()
            var all: [MessageFramer.Event] = []
            var i = 0
            while i < input.count {
                all += framer.feed(input[i..<min(i + chunk, input.count)])
                i += chunk
            }
            XCTAssertEqual(messages(all), ["{\"a\":\"héllo\"}", "[]"], "chunk size \(chunk)")
            XCTAssertTrue(errors(all).isEmpty)
        }
    }

    func testHeaderNamesAreCaseInsensitiveAndContentTypeOptional() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("content-length: 2\r\n\r\n{}CONTENT-LENGTH:3\r\ncontent-type: x\r\n\r\n123"))
        XCTAssertEqual(messages(events), ["{}", "123"])
    }

    func testZeroLengthBody() {
        var framer = MessageFramer()
        XCTAssertEqual(messages(framer.feed(bytes("Content-Length: 0\r\n\r\n"))), [""])
    }

    func testMissingContentLengthIsReportedAndTheNextMessageStillArrives() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("Content-Type: x\r\n\r\n{\"lost\":1}Content-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(errors(events), ["header has no Content-Length"])
        XCTAssertEqual(messages(events), ["{}"])
    }

    func testBadContentLengthValues() {
        for value in ["abc", "-5", "1.5", "", "0x10", "99999999999999999999999999"] {
            var framer = MessageFramer()
            let events = framer.feed(bytes("Content-Length: \(value)\r\n\r\n{}Content-Length: 2\r\n\r\n[]"))
            XCTAssertEqual(errors(events).count, 1, "value '\(value)': \(events)")
            XCTAssertEqual(messages(events), ["[]"], "value '\(value)'")
        }
    }

    func testJunkGluedToAHeaderIsReportedOnceAndTheHeaderFound() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("{\"jsonrpc\":\"2.0\"}Content-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertEqual(messages(events), ["{}"])
    }

    func testHeaderLineWithoutColon() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("Content-Length: 2\r\nnonsense\r\n\r\n{}Content-Length: 2\r\n\r\n[]"))
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertEqual(messages(events), ["[]"])
    }

    func testConflictingContentLengths() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}Content-Length: 2\r\n\r\n[]"))
        XCTAssertEqual(errors(events), ["two different Content-Length headers"])
        XCTAssertEqual(messages(events), ["[]"])
    }

    func testOversizedBodyIsSkippedWithoutBuffering() {
        var framer = MessageFramer(maxContentLength: 1024)
        var events = framer.feed(bytes("Content-Length: 10000000\r\n\r\n"))
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertTrue(errors(events)[0].contains("exceeds the limit of 1024"))
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 100_000)
        for _ in 0..<100 {
            events = framer.feed(chunk)
            XCTAssertTrue(events.isEmpty)
            XCTAssertEqual(framer.pendingByteCount, 0, "skipped bytes must not be buffered")
        }
        XCTAssertEqual(messages(framer.feed(bytes("Content-Length: 2\r\n\r\n{}"))), ["{}"])
    }

    func testOversizedBodyEndingInsideAChunk() {
        var framer = MessageFramer(maxContentLength: 4)
        let events = framer.feed(bytes("Content-Length: 6\r\n\r\n123456Content-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertEqual(messages(events), ["{}"])
    }

    func testEndlessHeaderIsBoundedAndRecovers() {
        var framer = MessageFramer()
        let junk = [UInt8](repeating: UInt8(ascii: "a"), count: MessageFramer.maxHeaderBytes + 10)
        var events = framer.feed(junk)
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertLessThan(framer.pendingByteCount, 64, "junk is dropped while resynchronising")
        events = framer.feed(junk) + framer.feed(bytes("Content-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(errors(events).count, 0)
        XCTAssertEqual(messages(events), ["{}"])
    }

    func testResynchronisationFindsAHeaderSplitAcrossReads() {
        var framer = MessageFramer()
        var events = framer.feed(bytes("Foo: 1\r\n\r\ngarbage Conte"))
        events += framer.feed(bytes("nt-Length: 2\r\n\r\n{}"))
        XCTAssertEqual(errors(events).count, 1)
        XCTAssertEqual(messages(events), ["{}"])
    }

    func testBareLFHeadersAreMalformed() {
        var framer = MessageFramer()
        let events = framer.feed(bytes("Content-Length: 2\n\n{}Content-Length: 2\r\n\r\n[]"))
        // The LF-only header never ends on its own; the next real header ends the block and the
        // framer reports it before recovering.
        XCTAssertEqual(errors(events).count, 1, "\(events)")
        XCTAssertTrue(messages(events).isEmpty || messages(events) == ["[]"])
    }

    func testFrameWritesTheHeader() {
        XCTAssertEqual(String(decoding: frame(Array("{}".utf8)), as: UTF8.self), "Content-Length: 2\r\n\r\n{}")
    }
}
