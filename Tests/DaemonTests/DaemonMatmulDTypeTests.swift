import Foundation
import XCTest
import RPC

/// `matmulDtype` on initialize (the daemon's default) and train/create (a job's own).
final class DaemonMatmulDTypeTests: XCTestCase {
    /// An unknown value is InvalidParams naming the field, on initialize and on train/create;
    /// initialize reports what products run as and whether the machine has AMX, and a job's plan
    /// says what its products run as: bf16 only where AMX is, with a warning where it is not.
    func testMatmulDtypeIsReportedAndUnknownOnesAreRefused() throws {
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("train.jsonl")
        let lines = (0..<10).map { i in #"{"ids":\#([1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 })}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: dataset)
        let d = try DaemonProcess()
        d.request(0, "initialize", #"{"matmulDtype":"fp8"}"#)
        let refused = try XCTUnwrap(d.response(id: 0)?["error"])
        XCTAssertEqual(refused["code"], .int(-32602))
        XCTAssertEqual(refused["data"]?["field"], .string("matmulDtype"))
        let device = try result(d, 1, "initialize", #"{"matmulDtype":"bf16"}"#)["device"]
        let amx = try XCTUnwrap(device?["amx"]?.boolValue)
        XCTAssertEqual(device?["matmulDtype"], .string(amx ? "bf16" : "f32"))

        let modelId = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny))
        let base = #""modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":8,"microBatch":2,"steps":1,"lr":0.001"#
        let bad = try XCTUnwrap(error(d, 10, "train/create", #"{\#(base),"matmulDtype":"f16"}"#))
        XCTAssertEqual(bad["code"], .int(-32602))
        XCTAssertEqual(bad["data"]?["field"], .string("matmulDtype"))
        // Absent: the daemon's default (bf16 here); f32 asked: f32.
        let byDefault = try result(d, 11, "train/create", "{\(base)}")
        XCTAssertEqual(byDefault["plan"]?["matmulDtype"], .string(amx ? "bf16" : "f32"))
        let warned = byDefault["warnings"].flatMap { w -> Bool? in
            guard case .array(let items) = w else { return nil }
            return items.contains { $0.stringValue?.contains("AMX") ?? false }
        }
        XCTAssertEqual(warned, !amx)
        let f32 = try result(d, 12, "train/create", #"{\#(base),"matmulDtype":"f32"}"#)
        XCTAssertEqual(f32["plan"]?["matmulDtype"], .string("f32"))
        let job = try XCTUnwrap(byDefault["jobId"]?.stringValue)
        let loss = try XCTUnwrap(try result(d, 13, "train/step", #"{"jobId":"\#(job)"}"#)["losses"])
        XCTAssertNotEqual(loss, .null)
        d.closeInput()
        _ = d.exitCode()
    }
}
