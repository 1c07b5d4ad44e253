import Foundation
import XCTest
import RPC

/// Bad input, concurrency, cancellation, progress and logging against the real process.
final class DaemonProtocolTests: XCTestCase {
    func testEveryKindOfBadInputIsAnsweredAndServingGoesOn() throws {
        let d = try DaemonProcess()
        d.request(1, "model/list")  // before initialize
        XCTAssertNotNil(d.initialize())
        let junk: [[UInt8]] = [
            Array("Content-Type: application/vscode-jsonrpc\r\n\r\n{}".utf8),  // no Content-Length
            Array("Content-Length: twelve\r\n\r\n".utf8),                      // non-numeric
            Array("Content-Length: -4\r\n\r\n".utf8),                          // negative
            frame([0x7B, 0xFF, 0x7D]),                                         // not UTF-8
            frame(Array("{\"jsonrpc\":".utf8)),                                // not JSON
            frame(Array("\"a string\"".utf8)),                                 // not a request
            frame(Array("[]".utf8)),                                           // empty batch
            frame(Array("[1,{\"x\":2}]".utf8)),                               // batch of invalid entries
            frame(Array(#"{"jsonrpc":"2.0","id":2,"method":"no/such"}"#.utf8)),
            frame(Array(#"{"jsonrpc":"2.0","id":3,"method":"debug/sleep","params":{"ms":"soon"}}"#.utf8)),
            frame(Array(#"{"jsonrpc":"2.0","id":4,"method":"debug/sleep","params":[5]}"#.utf8)),
        ]
        for bytes in junk { d.write(bytes) }
        d.request(5, "debug/echo", #"{"alive":true}"#)
        XCTAssertEqual(d.response(id: 5)?["result"]?["alive"], .bool(true))
        // Handler threads answer 2, 3 and 4; they may come after 5.
        for id in 2...4 { XCTAssertNotNil(d.response(id: id)) }
        let all = d.received
        func errors(_ code: Int64) -> Int { all.flatMap { v -> [JSONValue] in if case .array(let a) = v { return a } else { return [v] } }
            .filter { $0["error"]?["code"] == .int(code) }.count }
        XCTAssertEqual(errors(-32002), 1)
        XCTAssertEqual(errors(-32700), 5, "\(all)")
        XCTAssertEqual(errors(-32600), 4, "a string, an empty batch, two invalid batch entries")
        XCTAssertEqual(errors(-32601), 1)
        XCTAssertEqual(errors(-32602), 2)
        XCTAssertEqual(d.response(id: 3)?["error"]?["data"]?["field"], .string("ms"))
        XCTAssertFalse(all.contains { $0.stringValue?.hasPrefix("MALFORMED") == true })
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testAbsurdContentLengthIsSkippedWithoutBuffering() throws {
        let d = try DaemonProcess(arguments: ["--debug-methods", "--max-message-bytes", "4096"])
        XCTAssertNotNil(d.initialize())
        let body = #"{"jsonrpc":"2.0","id":1,"method":"debug/echo","params":{"pad":""# + String(repeating: "x", count: 100_000) + "\"}}"
        d.send(body)
        d.request(2, "debug/echo", "{}")
        XCTAssertNotNil(d.response(id: 2)?["result"])
        XCTAssertNil(d.received.first { $0["id"] == .int(1) })
        XCTAssertTrue(d.received.contains {
            $0["error"]?["code"] == .int(-32700) && $0["error"]?["message"]?.stringValue?.contains("exceeds the limit of 4096") == true
        })
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testBatchThroughTheProcess() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.send(#"[{"jsonrpc":"2.0","id":1,"method":"debug/echo","params":{"n":1}},{"jsonrpc":"2.0","id":2,"method":"model/list"},{"jsonrpc":"2.0","method":"initialized"}]"#)
        XCTAssertTrue(d.wait { $0.contains { if case .array = $0 { return true } else { return false } } })
        guard case .array(let answers)? = d.received.last else { return XCTFail() }
        XCTAssertEqual(Set(answers.compactMap { $0["id"]?.intValue }), [1, 2])
        d.closeInput()
        _ = d.exitCode()
    }

    func testSlowRequestDoesNotBlockAFastOne() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "debug/sleep", #"{"ms":1000}"#)
        d.request(2, "debug/echo", #"{"fast":true}"#)
        d.request(3, "model/list")
        XCTAssertNotNil(d.response(id: 1))
        let order = d.received.compactMap { $0["id"]?.intValue }.filter { $0 > 0 }
        XCTAssertEqual(order.last, 1, "the slow request answers last: \(order)")
        d.closeInput()
        _ = d.exitCode()
    }

    func testCancelledRequestAnswersPromptly() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "debug/sleep", #"{"ms":60000,"workDoneToken":"sleepy"}"#)
        XCTAssertTrue(d.wait { $0.contains { $0["method"] == .string("$/progress") } })
        let start = Date()
        d.notify("$/cancelRequest", #"{"id":1}"#)
        let error = d.response(id: 1)?["error"]
        XCTAssertEqual(error?["code"], .int(-32800))
        XCTAssertNotNil(error?["data"]?["hint"]?.stringValue)
        // Well before the 60 s sleep would end: the cancel reached it (a busy machine is slow, not 30 s slow).
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
        // The progress it had begun is ended.
        XCTAssertTrue(d.received.contains { $0["params"]?["value"]?["kind"] == .string("end") })
        d.request(2, "model/list")
        XCTAssertNotNil(d.response(id: 2)?["result"])
        d.closeInput()
        _ = d.exitCode()
    }

    func testProgressAndLogMessages() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "debug/sleep", #"{"ms":600,"workDoneToken":7}"#)
        d.request(2, "debug/log", #"{"message":"hello from the daemon","type":2}"#)
        XCTAssertEqual(d.response(id: 1)?["result"]?["sleptMs"], .int(600))
        let progress = d.received.filter { $0["method"] == .string("$/progress") }
        XCTAssertTrue(progress.allSatisfy { $0["params"]?["token"] == .int(7) })
        let kinds = progress.compactMap { $0["params"]?["value"]?["kind"]?.stringValue }
        XCTAssertEqual(kinds.first, "begin")
        XCTAssertEqual(kinds.last, "end")
        // 60 reports in 0.6 s, coalesced to a few per second.
        XCTAssertLessThanOrEqual(kinds.filter { $0 == "report" }.count, 6)
        let log = d.received.first { $0["method"] == .string("window/logMessage") }
        XCTAssertEqual(log?["params"]?["type"], .int(2))
        XCTAssertEqual(log?["params"]?["message"], .string("hello from the daemon"))
        d.closeInput()
        _ = d.exitCode()
    }

    func testInternalErrorKeepsTheDaemonServing() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "debug/fail")
        XCTAssertEqual(d.response(id: 1)?["error"]?["code"], .int(-32603))
        d.request(2, "model/list")
        XCTAssertNotNil(d.response(id: 2)?["result"])
        d.closeInput()
        _ = d.exitCode()
    }
}
