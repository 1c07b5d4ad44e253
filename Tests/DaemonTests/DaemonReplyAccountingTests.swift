import Foundation
import XCTest
import RPC

/// A reply's memory charge is released before the client can have the reply: a `model/list`
/// sent the moment a large `model/forward` reply has arrived never counts it (0.10.1 still did in
/// 4-13 of every 150-300 rounds on a busy machine). The race itself is checked deterministically
/// in RPCTests (ReplyReleaseTests); this is the same rule through the real process.
final class DaemonReplyAccountingTests: XCTestCase {
    func testUsedBytesNeverCountsAReplyTheClientAlreadyHas() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let model = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny, id: 1))
        let weights = try XCTUnwrap(try result(d, 2, "model/list", "{}")["memory"]?["usedBytes"]?.intValue)
        // 96 rows of 512 logits: about 260 kB of base64, a large message.
        let ids = "[" + (0..<96).map { String(1 + $0 % 500) }.joined(separator: ",") + "]"
        var phantom: [Int64] = []
        for round in 0..<100 {
            let id = 10 + 2 * round
            let reply = d.response(id: { d.request(id, "model/forward", #"{"modelId":"\#(model)","ids":\#(ids),"logits":"all","logitsEncoding":"base64"}"#); return id }(), timeout: 300)
            XCTAssertNotNil(reply?["result"], "\(reply ?? .null)")
            d.request(id + 1, "model/list", "{}")
            let used = try XCTUnwrap(d.response(id: id + 1, timeout: 300)?["result"]?["memory"]?["usedBytes"]?.intValue)
            if used != weights { phantom.append(used - weights) }
        }
        XCTAssertEqual(phantom, [], "rounds whose model/list still counted a reply already received")
        d.closeInput()
        _ = d.exitCode()
    }
}
