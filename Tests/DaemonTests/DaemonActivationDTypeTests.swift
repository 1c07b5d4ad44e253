import Foundation
import XCTest
import RPC

/// `activationDtype` on train/create and memory/plan's training workload.
final class DaemonActivationDTypeTests: XCTestCase {
    /// bf16 activations plan less than f32 for a 7B step and train with the same first loss (the
    /// forward is fp32 either way); an unknown dtype is InvalidParams naming the field.
    func testBF16ActivationsPlanLessAndUnknownOnesAreRefused() throws {
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("train.jsonl")
        let lines = (0..<10).map { i in #"{"ids":\#([1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 })}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: dataset)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        func planned(_ id: Int, _ dtype: String) -> JSONValue? {
            d.request(id, "memory/plan", #"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"train","seqLen":512,"lora":{"r":8},"activationDtype":"\#(dtype)"}}"#)
            return d.response(id: id)?["result"]?["peakBytes"]
        }
        let f32 = try XCTUnwrap(planned(1, "f32")?.intValue), bf16 = try XCTUnwrap(planned(2, "bf16")?.intValue)
        XCTAssertLessThan(bf16, f32)
        XCTAssertEqual(planned(3, "fp8"), nil)
        XCTAssertEqual(d.received.first { $0["id"] == .int(3) }?["error"]?["data"]?["field"], .string("workload.activationDtype"))

        let modelId = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny))
        let base = #""modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":8,"microBatch":2,"steps":1,"lr":0.001"#
        let refused = try XCTUnwrap(error(d, 10, "train/create", #"{\#(base),"activationDtype":"f16"}"#))
        XCTAssertEqual(refused["code"], .int(-32602))
        XCTAssertEqual(refused["data"]?["field"], .string("activationDtype"))
        var losses: [JSONValue?] = []
        var peaks: [Int64] = []
        for (i, dtype) in ["f32", "bf16"].enumerated() {
            let created = try result(d, 20 + i, "train/create", #"{\#(base),"activationDtype":"\#(dtype)"}"#)
            peaks.append(try XCTUnwrap(created["plan"]?["peakBytes"]?.intValue))
            let job = try XCTUnwrap(created["jobId"]?.stringValue)
            losses.append(try result(d, 30 + i, "train/step", #"{"jobId":"\#(job)"}"#)["losses"])
        }
        // Two layers: half of two layers' set saved, one layer's fp32 set to compute in added.
        XCTAssertEqual(peaks[1], peaks[0])
        XCTAssertEqual(losses[0], losses[1])
        d.closeInput()
        _ = d.exitCode()
    }
}
