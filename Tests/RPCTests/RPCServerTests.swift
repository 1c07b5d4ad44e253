import XCTest
@testable import RPC

final class RPCServerTests: XCTestCase {
    // MARK: Lifecycle

    func testRequestsBeforeInitializeAreRefusedAndNotificationsDropped() {
        let h = ServerHarness()
        h.request(1, "echo", "{}")
        XCTAssertEqual(h.errorCode(id: 1), Int64(ErrorCode.serverNotInitialized.rawValue))
        h.notify("initialized")
        h.initialize()
        h.request(2, "echo", #"{"x":1}"#)
        XCTAssertEqual(h.waitForResponse(id: 2)?["result"], .object([("x", .int(1))]))
        XCTAssertEqual(h.server.lifecycleState, .running)
    }

    func testInitializeTwiceIsInvalidRequest() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "initialize", "{}")
        XCTAssertEqual(h.errorCode(id: 1), -32600)
    }

    func testShutdownThenExitExitsZero() {
        let h = ServerHarness()
        h.initialize()
        h.send(#"{"jsonrpc":"2.0","id":1,"method":"shutdown","params":null}"#)
        XCTAssertEqual(h.waitForResponse(id: 1)?["result"], .null)
        h.request(2, "echo", "{}")
        XCTAssertEqual(h.errorCode(id: 2), -32600, "requests after shutdown are InvalidRequest")
        XCTAssertTrue(h.waitForResponse(id: 2)?["error"]?["data"]?["hint"]?.stringValue?.contains("exit") == true)
        h.notify("exit")
        XCTAssertEqual(h.waitForExit(), 0)
    }

    func testExitWithoutShutdownExitsOne() {
        let h = ServerHarness()
        h.initialize()
        h.notify("exit")
        XCTAssertEqual(h.waitForExit(), 1)
    }

    func testExitBeforeInitializeExitsOne() {
        let h = ServerHarness()
        h.notify("exit")
        XCTAssertEqual(h.waitForExit(), 1)
    }

    func testEndOfInputCancelsRunningWorkAndExits() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "sleep", #"{"ms":60000}"#)
        XCTAssertTrue(h.wait { _ in h.server.requestsInFlight == 1 })
        let start = Date()
        h.server.inputEnded()
        XCTAssertEqual(h.waitForExit(), 1)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "well before the 60 s sleep ends")
        XCTAssertEqual(h.errorCode(id: 1), -32800)
    }

    func testNothingIsReadAfterExit() {
        let h = ServerHarness()
        h.initialize()
        h.notify("exit")
        _ = h.waitForExit()
        h.request(1, "echo", "{}")
        h.drain()
        XCTAssertFalse(h.received.contains { $0["id"] == .int(1) })
    }

    // MARK: Bad input

    func testParseErrors() {
        let h = ServerHarness()
        h.initialize()
        h.sendRaw(Array("Content-Length: 5\r\n\r\n{bad}".utf8))
        h.sendRaw(Array("Content-Length: 4\r\n\r\n".utf8) + [0x22, 0xFF, 0xFE, 0x22])  // not UTF-8
        h.sendRaw(Array("X-Nothing: 1\r\n\r\n".utf8))  // no Content-Length
        h.request(1, "echo", #"{"still":"serving"}"#)
        XCTAssertEqual(h.waitForResponse(id: 1)?["result"]?["still"], .string("serving"))
        let parseErrors = h.responses.filter { $0["error"]?["code"] == .int(-32700) }
        XCTAssertEqual(parseErrors.count, 3)
        XCTAssertTrue(parseErrors.allSatisfy { $0["id"] == .null && $0["error"]?["data"]?["hint"]?.stringValue != nil })
    }

    func testOversizedMessageIsRefusedAndSkipped() {
        let h = ServerHarness(maxContentLength: 64)
        h.initialize()
        let big = #"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"pad":""# + String(repeating: "x", count: 500) + "\"}}"
        h.send(big)
        h.request(2, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 2)?["result"])
        XCTAssertFalse(h.received.contains { $0["id"] == .int(1) })
        XCTAssertEqual(h.responses.filter { $0["error"]?["code"] == .int(-32700) }.count, 1)
    }

    func testNotARequest() {
        let h = ServerHarness()
        h.initialize()
        for body in ["42", #""text""#, "{}", #"{"jsonrpc":"1.0","id":9,"method":"echo"}"#,
                     #"{"jsonrpc":"2.0","id":9,"method":7}"#, #"{"jsonrpc":"2.0","id":9,"method":"echo","params":3}"#,
                     #"{"jsonrpc":"2.0","id":1.5,"method":"echo"}"#, #"{"jsonrpc":"2.0","id":[1],"method":"echo"}"#] {
            h.send(body)
        }
        h.request(99, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 99))
        let invalid = h.responses.filter { $0["error"]?["code"] == .int(-32600) }
        XCTAssertEqual(invalid.count, 8, "\(h.responses)")
        // The id is echoed whenever it could be read.
        XCTAssertEqual(invalid.filter { $0["id"] == .int(9) }.count, 3)
    }

    func testResponsesFromTheClientAreIgnored() {
        let h = ServerHarness()
        h.initialize()
        h.send(#"{"jsonrpc":"2.0","id":5,"result":{}}"#)
        h.request(6, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 6))
        XCTAssertFalse(h.received.contains { $0["id"] == .int(5) })
    }

    func testUnknownMethod() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "no/such", "{}")
        let error = h.waitForResponse(id: 1)?["error"]
        XCTAssertEqual(error?["code"], .int(-32601))
        XCTAssertEqual(error?["data"]?["method"], .string("no/such"))
        h.notify("no/such/notification")
        h.notify("$/setTrace", #"{"value":"off"}"#)
        h.request(2, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 2))
        XCTAssertEqual(h.responses.count, 3, "unknown notifications get no answer")
    }

    func testInvalidParamsNameTheField() {
        let h = ServerHarness()
        h.initialize()
        let cases: [(String, String)] = [
            (#"{"count":1}"#, "name"),
            (#"{"name":"a","count":"many"}"#, "count"),
            (#"{"name":"a","count":null}"#, "count"),
            (#"{"name":"a","count":1,"nested":{"values":[1,"x"]}}"#, "nested.values[1]"),
            (#"{"name":"a","count":1,"nested":{}}"#, "nested.values"),
            (#"{"name":"a","count":1.5}"#, "count"),
            (#"{"name":"a","count":1e30}"#, "count"),
            (#"{"name":7,"count":1}"#, "name"),
            (#"{"name":"a","count":1,"nested":[]}"#, "nested"),
            (#"[1,2]"#, "params"),
        ]
        for (i, (params, field)) in cases.enumerated() {
            h.request(i + 1, "typed", params)
            let error = h.waitForResponse(id: i + 1)?["error"]
            XCTAssertEqual(error?["code"], .int(-32602), params)
            XCTAssertEqual(error?["data"]?["field"], .string(field), params)
            XCTAssertNotNil(error?["data"]?["hint"]?.stringValue)
        }
        h.request(40, "typed", #"{"name":"a","count":1.5}"#)
        XCTAssertEqual(h.waitForResponse(id: 40)?["error"]?["message"], .string("Invalid params: 'count' must be an integer, got 1.5"))
        h.request(50, "typed", #"{"name":"a","count":3,"extra":true}"#)
        XCTAssertEqual(h.waitForResponse(id: 50)?["result"], .string("a:3"))
        h.request(51, "typed")
        XCTAssertEqual(h.waitForResponse(id: 51)?["error"]?["data"]?["field"], .string("name"), "absent params decode as {}")
    }

    func testAHandlerErrorIsInternalErrorAndServingGoesOn() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "fail")
        XCTAssertEqual(h.errorCode(id: 1), -32603)
        h.request(2, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 2)?["result"])
    }

    func testDuplicateIdInFlight() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "sleep", #"{"ms":300}"#)
        h.request(1, "echo", "{}")
        XCTAssertTrue(h.wait { $0.contains { $0["error"]?["code"] == .int(-32600) && $0["id"] == .int(1) } })
        XCTAssertTrue(h.wait { $0.contains { $0["result"] == .int(300) } })
    }

    // MARK: Batches

    func testBatch() {
        let h = ServerHarness()
        h.initialize()
        h.send(#"[{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}},{"jsonrpc":"2.0","method":"note"},"#
               + #"{"jsonrpc":"2.0","id":"two","method":"no/such"},7,{"jsonrpc":"2.0","id":3,"method":"sleep","params":{"ms":20}}]"#)
        XCTAssertTrue(h.wait { $0.contains { if case .array = $0 { return true } else { return false } } })
        guard case .array(let answers) = h.received.last! else { return XCTFail() }
        XCTAssertEqual(answers.count, 4, "one answer per request and per invalid entry, none for the notification")
        XCTAssertEqual(answers.first { $0["id"] == .int(1) }?["result"], .object([("a", .int(1))]))
        XCTAssertEqual(answers.first { $0["id"] == .string("two") }?["error"]?["code"], .int(-32601))
        XCTAssertEqual(answers.first { $0["id"] == .int(3) }?["result"], .int(20))
        XCTAssertEqual(answers.first { $0["id"] == .null }?["error"]?["code"], .int(-32600))
    }

    func testEmptyBatchAndBatchOfInvalidEntries() {
        let h = ServerHarness()
        h.initialize()
        h.send("[]")
        XCTAssertTrue(h.wait { $0.count == 2 })
        XCTAssertEqual(h.received[1]["error"]?["code"], .int(-32600))
        XCTAssertEqual(h.received[1]["id"], .null)
        h.send("[1,2,3]")
        XCTAssertTrue(h.wait { $0.count == 3 })
        guard case .array(let answers) = h.received[2] else { return XCTFail("\(h.received[2])") }
        XCTAssertEqual(answers.count, 3)
        XCTAssertTrue(answers.allSatisfy { $0["error"]?["code"] == .int(-32600) })
    }

    func testBatchOfNotificationsGetsNoAnswer() {
        let h = ServerHarness()
        h.initialize()
        h.send(#"[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]"#)
        h.request(1, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 1))
        XCTAssertEqual(h.received.count, 2)
    }

    func testLifecycleMessagesAreRefusedInABatch() {
        let h = ServerHarness()
        h.send(#"[{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}]"#)
        XCTAssertTrue(h.wait { !$0.isEmpty })
        guard case .array(let answers) = h.received[0] else { return XCTFail() }
        XCTAssertEqual(answers[0]["error"]?["code"], .int(-32600))
        h.initialize()
        h.send(#"[{"jsonrpc":"2.0","id":2,"method":"shutdown"},{"jsonrpc":"2.0","method":"exit"}]"#)
        XCTAssertTrue(h.wait { $0.count == 3 })
        guard case .array(let second) = h.received[2] else { return XCTFail() }
        XCTAssertEqual(second[0]["error"]?["code"], .int(-32600))
        h.send(#"[{"jsonrpc":"2.0","id":3,"method":"exit"}]"#)
        XCTAssertTrue(h.wait { $0.count == 4 })
        guard case .array(let third) = h.received[3] else { return XCTFail() }
        XCTAssertEqual(third[0]["error"]?["code"], .int(-32600))
        XCTAssertEqual(h.server.lifecycleState, .running, "neither shutdown nor exit took effect")
        h.request(4, "exit")
        XCTAssertEqual(h.errorCode(id: 4), -32600, "exit is a notification")
        XCTAssertEqual(h.server.lifecycleState, .running)
    }

    // MARK: Concurrency, cancellation, progress

    func testASlowRequestDoesNotBlockAFastOne() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "sleep", #"{"ms":500}"#)
        h.request(2, "echo", #"{"fast":true}"#)
        XCTAssertTrue(h.wait { $0.contains { $0["id"] == .int(1) } })
        let order = h.responses.compactMap { $0["id"]?.intValue }
        XCTAssertEqual(order, [0, 2, 1])
    }

    func testCancelRequestAnswersRequestCancelledPromptly() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "sleep", #"{"ms":60000}"#)
        XCTAssertTrue(h.wait { _ in h.server.requestsInFlight == 1 })
        let start = Date()
        h.notify("$/cancelRequest", #"{"id":1}"#)
        XCTAssertEqual(h.errorCode(id: 1), -32800)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "well before the 60 s work ends")
        XCTAssertEqual(h.server.requestsInFlight, 0)
        // Cancelling something finished or unknown is harmless.
        h.notify("$/cancelRequest", #"{"id":1}"#)
        h.notify("$/cancelRequest", #"{"id":"nope"}"#)
        h.request(2, "echo", "{}")
        XCTAssertNotNil(h.waitForResponse(id: 2)?["result"])
    }

    func testCancelByStringId() {
        let h = ServerHarness()
        h.initialize()
        h.send(#"{"jsonrpc":"2.0","id":"abc","method":"sleep","params":{"ms":60000}}"#)
        XCTAssertTrue(h.wait { _ in h.server.requestsInFlight == 1 })
        h.notify("$/cancelRequest", #"{"id":"abc"}"#)
        XCTAssertTrue(h.wait { $0.contains { $0["id"] == .string("abc") && $0["error"]?["code"] == .int(-32800) } })
    }

    func testProgressBeginReportsEndAreCoalescedAndOrdered() {
        let h = ServerHarness(progressInterval: 0.1)
        h.initialize()
        h.request(1, "sleep", #"{"ms":500,"workDoneToken":"tok"}"#)
        XCTAssertNotNil(h.waitForResponse(id: 1))
        let progress = h.notifications("$/progress")
        XCTAssertTrue(progress.allSatisfy { $0["params"]?["token"] == .string("tok") })
        let kinds = progress.compactMap { $0["params"]?["value"]?["kind"]?.stringValue }
        XCTAssertEqual(kinds.first, "begin")
        XCTAssertEqual(kinds.last, "end")
        XCTAssertEqual(kinds.filter { $0 == "begin" || $0 == "end" }.count, 2)
        let reports = progress.filter { $0["params"]?["value"]?["kind"] == .string("report") }
        // 100 raw reports over ~0.5 s at most every 0.1 s: a handful, never all of them.
        XCTAssertGreaterThanOrEqual(reports.count, 2)
        XCTAssertLessThanOrEqual(reports.count, 12)
        // Coalescing concatenates streamed text: every "." arrives.
        let text = reports.compactMap { $0["params"]?["value"]?["text"]?.stringValue }.joined()
        XCTAssertEqual(text.count, 100)
        XCTAssertEqual(reports.last?["params"]?["value"]?["percentage"], .int(100), "LSP percentages are integers")
        // end comes before the response.
        let endIndex = h.received.firstIndex { $0["params"]?["value"]?["kind"] == .string("end") }!
        let responseIndex = h.received.firstIndex { $0["id"] == .int(1) }!
        XCTAssertLessThan(endIndex, responseIndex)
    }

    func testEveryRequestWithATokenGetsBeginAndEnd() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "echo", #"{"workDoneToken":"quick"}"#)
        XCTAssertNotNil(h.waitForResponse(id: 1))
        let values = h.notifications("$/progress").compactMap { $0["params"]?["value"] }
        XCTAssertEqual(values.map { $0["kind"] }, [.string("begin"), .string("end")])
        XCTAssertEqual(values.first?["title"], .string("echo"))
    }

    func testNoProgressWithoutAToken() {
        let h = ServerHarness()
        h.initialize()
        h.request(1, "sleep", #"{"ms":50}"#)
        XCTAssertNotNil(h.waitForResponse(id: 1))
        XCTAssertTrue(h.notifications("$/progress").isEmpty)
    }

    func testManyConcurrentRequestsEachGetOneAnswer() {
        let h = ServerHarness()
        h.initialize()
        for i in 1...200 { h.request(i, i % 3 == 0 ? "sleep" : "echo", i % 3 == 0 ? #"{"ms":10}"# : "{}") }
        XCTAssertTrue(h.wait { $0.count == 201 })
        let ids = h.responses.compactMap { $0["id"]?.intValue }
        XCTAssertEqual(Set(ids).count, 201)
    }

    // MARK: Bounded concurrency

    func testManySlowRequestsNeverRunMoreThanTheBoundAndAllAnswer() {
        let bound = 6
        let h = ServerHarness(maxConcurrentRequests: bound)
        h.initialize()
        for i in 1...300 { h.request(i, "busy", #"{"ms":15}"#) }
        XCTAssertTrue(h.wait { $0.count == 301 })
        let results = h.responses.filter { $0["id"] != .int(0) }
        XCTAssertEqual(Set(results.compactMap { $0["id"]?.intValue }).count, 300)
        XCTAssertTrue(results.allSatisfy { $0["result"] == $0["id"] }, "every busy request ran and answered its own id")
        XCTAssertEqual(h.occupancy.peakNow, bound, "the pool filled up, and never past its bound")
        XCTAssertLessThanOrEqual(h.server.standardPool.peakRunningCount, bound)
    }

    func testACancelledQueuedRequestAnswersAtOnceWithoutRunning() {
        let h = ServerHarness(maxConcurrentRequests: 2)
        h.initialize()
        h.request(1, "busy", #"{"ms":60000}"#)
        h.request(2, "busy", #"{"ms":60000}"#)
        h.request(3, "busy", #"{"ms":10}"#)
        XCTAssertTrue(h.wait { _ in h.occupancy.ran(1) && h.occupancy.ran(2) })
        XCTAssertEqual(h.server.standardPool.queuedCount, 1)
        let start = Date()
        h.notify("$/cancelRequest", #"{"id":3}"#)
        XCTAssertEqual(h.errorCode(id: 3), -32800)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "well before the 60 s work ends")
        XCTAssertFalse(h.occupancy.ran(3), "a request cancelled in the queue never reaches its handler")
        XCTAssertEqual(h.server.standardPool.queuedCount, 0)
        XCTAssertEqual(h.server.requestsInFlight, 2)
        // Its id is free again, and the running ones still cancel as before.
        h.notify("$/cancelRequest", #"{"id":1}"#)
        h.notify("$/cancelRequest", #"{"id":2}"#)
        XCTAssertEqual(h.errorCode(id: 1), -32800)
        XCTAssertEqual(h.errorCode(id: 2), -32800)
        h.request(3, "busy", #"{"ms":1}"#)
        XCTAssertTrue(h.wait { $0.filter { $0["id"] == .int(3) }.count == 2 })
        XCTAssertEqual(h.received.last { $0["id"] == .int(3) }?["result"], .int(3))
    }

    func testAQuickRequestAnswersWhileThePoolIsFull() {
        let h = ServerHarness(maxConcurrentRequests: 2)
        h.initialize()
        for i in 1...5 { h.request(i, "busy", #"{"ms":60000}"#) }
        XCTAssertTrue(h.wait { _ in h.occupancy.ran(1) && h.occupancy.ran(2) })
        h.request(10, "quickEcho", #"{"alive":true}"#)
        // Within 30 s, half the busy requests' 60 s: it went ahead of them, however slow the machine.
        XCTAssertEqual(h.waitForResponse(id: 10, timeout: 30)?["result"], .object([("alive", .bool(true))]))
        // A standard request waits its turn behind the busy ones.
        h.request(11, "echo", "{}")
        Thread.sleep(forTimeInterval: 0.1)
        h.drain()
        XCTAssertFalse(h.received.contains { $0["id"] == .int(11) })
        // Ending the connection answers every request, running and queued, within the drain time.
        h.server.inputEnded()
        XCTAssertEqual(h.waitForExit(), 1)
        for id in [1, 2, 3, 4, 5, 11] { XCTAssertEqual(h.errorCode(id: id), -32800, "request \(id)") }
        XCTAssertFalse(h.occupancy.ran(3))
    }
}
