import XCTest
import RPC

/// A reply is memory too: model/forward's logits reply is charged before it is built, refused
/// with a way out when it cannot fit, and offered as base64 float32 (5.3 bytes a logit, not 25).
final class DaemonReplyBudgetTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    /// The floats of a base64 `logits` reply, decoded as a client does.
    func base64Floats(_ result: JSONValue) throws -> [Float] {
        let text = try XCTUnwrap(result["logits"]?.stringValue, "\(result)")
        let data = try XCTUnwrap(Data(base64Encoded: text))
        XCTAssertEqual(data.count % 4, 0)
        return data.withUnsafeBytes { raw in (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
    }

    func testBase64LogitsAreTheJSONLogitsBitForBit() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let ids = try goldenInputIds()
        let json = try result(d, 1, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#)
        let packed = try result(d, 2, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all","logitsEncoding":"base64"}"#)
        XCTAssertEqual(packed["logitsEncoding"], .string("base64"))
        XCTAssertEqual(packed["dtype"], .string("float32"))
        let rows = try XCTUnwrap(json["logits"]?.arrayValue)
        let vocab = try XCTUnwrap(rows.first?.arrayValue?.count)
        XCTAssertEqual(packed["shape"], .array([.int(Int64(ids.count)), .int(Int64(vocab))]))
        let expected = floats(json["logits"])
        XCTAssertEqual(expected.count, ids.count * vocab)
        XCTAssertEqual(try base64Floats(packed), expected, "the JSON decimals and the float32 bytes are the same numbers")
        // The last row alone, and an unknown encoding.
        let last = try result(d, 3, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logitsEncoding":"base64"}"#)
        // (The last row alone is computed by another kernel path: equal to rounding, not bit for bit.)
        XCTAssertLessThan(maxAbsDifference(try base64Floats(last), Array(expected.suffix(vocab))), 1e-5)
        let bad = error(d, 4, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logitsEncoding":"hex"}"#)
        XCTAssertEqual(bad?["code"], .int(-32602))
        XCTAssertEqual(bad?["data"]?["field"], .string("logitsEncoding"))
        d.closeInput()
        _ = d.exitCode()
    }

    func testAReplyThatCannotFitIsRefusedWithAWayOutAndReleasedOnceSent() throws {
        let d = try DaemonProcess()
        // The tiny model (~0.63 MB) and a 200-position session (~1.6 MB) leave about 1.2 MB: the
        // base64 reply (~0.55 MB) fits, the JSON one (up to 2.6 MB: 200 × 512 logits × 25 bytes) does not.
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":3500000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        func used(_ id: Int) -> JSONValue? {
            d.request(id, "model/list")
            return d.response(id: id)?["result"]?["memory"]?["usedBytes"]
        }
        let before = used(1)
        let ids = (0..<200).map { ($0 * 37 + 5) % 512 }
        let refused = try XCTUnwrap(error(d, 2, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#))
        XCTAssertEqual(refused["code"], .int(-31020), "\(refused)")
        XCTAssertGreaterThanOrEqual(refused["data"]?["breakdown"]?["reply"]?.intValue ?? 0, 200 * 512 * 19, "\(refused)")
        XCTAssertEqual(refused["data"]?["suggestion"]?["changes"], .object([("logitsEncoding", .string("base64"))]))
        XCTAssertLessThanOrEqual(refused["data"]?["suggestion"]?["peakBytes"]?.intValue ?? .max, 3_500_000)
        XCTAssertTrue(refused["data"]?["hint"]?.stringValue?.contains("base64") == true)
        XCTAssertEqual(used(3), before, "a refused reply charges nothing")
        // The suggestion, applied, fits; afterwards the reply's charge is gone.
        let packed = try result(d, 4, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all","logitsEncoding":"base64"}"#)
        XCTAssertEqual(try base64Floats(packed).count, 200 * 512)
        var after: JSONValue?
        for id in 5..<25 { after = used(id); if after == before { break }; Thread.sleep(forTimeInterval: 0.05) }
        XCTAssertEqual(after, before, "the reply's charge ends once it is written")
        d.closeInput()
        _ = d.exitCode()
    }

    func testTokenizeIsChargedAndAnOverBudgetTextIsRefused() throws {
        let d = try DaemonProcess()
        // ~0.63 MB of model under a 2.5 MB cap: a few kilobytes of text fit, 300 kB (up to ~13 bytes a token) do not.
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":2500000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "model/list")
        let before = d.response(id: 1)?["result"]?["memory"]?["usedBytes"]
        let small = try result(d, 2, "tokenize", #"{"modelId":"\#(modelId)","text":"The cat sat on the mat","addBos":false}"#)
        XCTAssertEqual(small["ids"]?.arrayValue?.isEmpty, false)
        let big = String(repeating: "The cat sat on the mat.\n", count: 12_500)
        let refused = try XCTUnwrap(error(d, 3, "tokenize", #"{"modelId":"\#(modelId)","text":"\#(big.replacingOccurrences(of: "\n", with: "\\n"))"}"#))
        XCTAssertEqual(refused["code"], .int(-31020), "\(refused)")
        XCTAssertGreaterThan(refused["data"]?["breakdown"]?["tokenize"]?.intValue ?? 0, 2_500_000)
        XCTAssertTrue(refused["data"]?["hint"]?.stringValue?.contains("in parts") == true)
        var after: JSONValue?
        for id in 4..<24 {
            d.request(id, "model/list")
            after = d.response(id: id)?["result"]?["memory"]?["usedBytes"]
            if after == before { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertEqual(after, before, "nothing stays charged once tokenize has answered")
        d.closeInput()
        _ = d.exitCode()
    }
}
