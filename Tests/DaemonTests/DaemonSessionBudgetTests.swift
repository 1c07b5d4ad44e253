import XCTest
import RPC

/// Requests that run a session (generate, eval/perplexity) are charged their planned KV cache and
/// arena before anything is allocated; over the budget they change nothing and say what fits.
final class DaemonSessionBudgetTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    func testOverBudgetGenerateSuggestsMaxTokensThatFits() throws {
        let d = try DaemonProcess()
        // The tiny model (~632 kB) and room for a few thousand positions, not a million.
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":2500000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "model/list")
        let used = d.response(id: 1)?["result"]?["memory"]?["usedBytes"]
        d.request(2, "generate", #"{"modelId":"\#(modelId)","ids":[1,2,3],"maxTokens":1000000}"#)
        let error = try XCTUnwrap(d.response(id: 2)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(error["code"], .int(-31020))
        XCTAssertNotNil(error["data"]?["breakdown"]?["kvCache"])
        let maxTokens = try XCTUnwrap(error["data"]?["suggestion"]?["changes"]?["maxTokens"]?.intValue, "\(error)")
        let peak = try XCTUnwrap(error["data"]?["suggestion"]?["peakBytes"]?.intValue)
        XCTAssertGreaterThan(maxTokens, 100)
        XCTAssertLessThan(maxTokens, 1_000_000)
        XCTAssertLessThanOrEqual(peak, 2_500_000)
        d.request(3, "model/list")
        XCTAssertEqual(d.response(id: 3)?["result"]?["memory"]?["usedBytes"], used, "OverBudget charged nothing")
        // Applied, the suggestion fits; one token more does not.
        d.request(4, "generate", #"{"modelId":"\#(modelId)","ids":[1,2,3],"maxTokens":\#(maxTokens + 1)}"#)
        XCTAssertEqual(d.response(id: 4)?["error"]?["code"], .int(-31020))
        d.request(5, "generate", #"{"modelId":"\#(modelId)","ids":[1,2,3],"maxTokens":\#(maxTokens)}"#)
        XCTAssertNotNil(d.response(id: 5, timeout: DaemonProcess.hang)?["result"]?["ids"], "\(d.received.last ?? .null)")
        d.closeInput()
        _ = d.exitCode()
    }

    func testOverBudgetPerplexitySuggestsASeqLenThatFits() throws {
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("data.jsonl")
        let ids = (0..<3000).map { ($0 * 7 + 3) % 500 }
        try ("{\"ids\": \(ids)}\n").write(to: dataset, atomically: true, encoding: .utf8)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":2500000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let params = #""modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"tokens"}"#
        d.request(1, "eval/perplexity", "{\(params),\"seqLen\":3000}")
        let error = try XCTUnwrap(d.response(id: 1)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(error["code"], .int(-31020))
        let seqLen = try XCTUnwrap(error["data"]?["suggestion"]?["changes"]?["seqLen"]?.intValue, "\(error)")
        XCTAssertLessThan(seqLen, 3000)
        d.request(2, "eval/perplexity", "{\(params),\"seqLen\":\(seqLen)}")
        XCTAssertNotNil(d.response(id: 2, timeout: DaemonProcess.hang)?["result"]?["perplexity"], "\(d.received.last ?? .null)")
        d.closeInput()
        _ = d.exitCode()
    }

    /// Data with no label to predict is refused for what it is, before a session is planned,
    /// charged or run: InvalidParams, even when that session would not fit the budget.
    func testPerplexityOfDataWithNoLabelIsInvalidParamsBeforeAnySession() throws {
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("unlabelled.jsonl")
        let ids = (0..<3000).map { ($0 * 7 + 3) % 500 }
        try ("{\"ids\": \(ids), \"labels\": \(Array(repeating: -100, count: ids.count))}\n").write(to: dataset, atomically: true, encoding: .utf8)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":2500000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let error = try XCTUnwrap(self.error(d, 1, "eval/perplexity",
                                             #"{"modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":3000}"#))
        XCTAssertEqual(error["code"], .int(-32602), "\(error)")
        XCTAssertEqual(error["data"]?["field"], .string("dataset"))
        XCTAssertTrue(error["message"]?.stringValue?.contains("no token with a label") == true, "\(error)")
        d.closeInput()
        _ = d.exitCode()
    }
}
