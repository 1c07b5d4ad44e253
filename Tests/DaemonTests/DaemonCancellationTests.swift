import XCTest
import RPC

/// Long work checks its request's token between units of work: model/prune between calibration
/// batches and layers, model/quantize between tensors. A cancelled one answers RequestCancelled
/// promptly and leaves nothing loaded and nothing charged.
final class DaemonCancellationTests: XCTestCase {
    /// The 28M-parameter random model (8 layers, vocab 4096) and a calibration set of `examples`
    /// rows of 64 tokens: about 0.3 s a row for taylor in a debug build.
    func smallModel(examples: Int) throws -> (model: URL, calibration: URL) {
        let work = try temporaryDirectory()
        let model = work.appendingPathComponent("small")
        XCTAssertEqual(try DaemonProcess.run(["make-model", "--preset", "small", "--out", model.path]).status, 0)
        let calibration = work.appendingPathComponent("calibration.jsonl")
        let lines = (0..<examples).map { i in #"{"ids":\#([1] + (0..<63).map { 3 + ($0 * 7 + i * 13) % 4000 })}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: calibration)
        return (model, calibration)
    }

    /// Sends `method`, cancels it after `after` seconds, and checks the answer came quickly and
    /// left the daemon as it was.
    /// `within` is well under what the uncancelled work has left, so only a cancel between units meets it.
    func assertCancelsPromptly(_ d: DaemonProcess, _ method: String, _ params: String, after: TimeInterval, within: TimeInterval, file: StaticString = #filePath, line: UInt = #line) {
        d.request(10, "model/list")
        let before = d.response(id: 10)?["result"]
        d.request(11, method, params)
        Thread.sleep(forTimeInterval: after)
        XCTAssertNil(d.received.first { $0["id"] == .int(11) }, "\(method) ended before it could be cancelled", file: file, line: line)
        let cancelledAt = Date()
        d.notify("$/cancelRequest", #"{"id":11}"#)
        let answer = d.response(id: 11)
        XCTAssertEqual(answer?["error"]?["code"], .int(-32800), "\(answer ?? .null)", file: file, line: line)
        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), within, "\(method) answered the cancel promptly", file: file, line: line)
        d.request(12, "model/list")
        let after = d.response(id: 12)?["result"]
        XCTAssertEqual(after?["models"]?.arrayValue?.count, before?["models"]?.arrayValue?.count, "nothing stays loaded", file: file, line: line)
        XCTAssertEqual(after?["memory"]?["usedBytes"], before?["memory"]?["usedBytes"], "nothing stays charged", file: file, line: line)
    }

    func testTaylorPruneCancelsBetweenCalibrationBatches() throws {
        let (model, calibration) = try smallModel(examples: 100)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(model.path))
        // Uncancelled this pass takes about 30 s idle (0.3 s a batch); 10 s leaves room for a busy machine.
        assertCancelsPromptly(d, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.5,"calibration":{"path":"\#(calibration.path)","format":"tokens"},"seqLen":64}"#, after: 1.5, within: 10)
        d.closeInput()
        _ = d.exitCode()
    }

    func testQuantizeCancelsBetweenTensors() throws {
        let (model, _) = try smallModel(examples: 1)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(model.path))
        // Uncancelled this takes about 3 s idle (56 tensors): timed here first, so the bound scales
        // with the machine's load; cancelled a sixth of the way in, it must answer within half of it.
        let started = Date()
        let whole = try result(d, 1, "model/quantize", #"{"modelId":"\#(modelId)","format":"nf4"}"#)
        let seconds = Date().timeIntervalSince(started)
        _ = try result(d, 2, "model/unload", #"{"modelId":"\#(try XCTUnwrap(whole["modelId"]?.stringValue))"}"#)
        assertCancelsPromptly(d, "model/quantize", #"{"modelId":"\#(modelId)","format":"nf4"}"#, after: seconds / 6, within: seconds / 2)
        d.closeInput()
        _ = d.exitCode()
    }

    func testAPathologicalTargetModulesPatternIsAQuickFormatError() throws {
        let work = try temporaryDirectory()
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny))
        let adapterId = try XCTUnwrap(try result(d, 1, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"targets":["q_proj","v_proj"]}"#)["adapterId"]?.stringValue)
        let folder = work.appendingPathComponent("adapter")
        _ = try result(d, 2, "adapter/save", #"{"adapterId":"\#(adapterId)","path":"\#(folder.path)"}"#)
        let configURL = folder.appendingPathComponent("adapter_config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["target_modules"] = "(.*.*)*Q"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let start = Date()
        let refused = try XCTUnwrap(error(d, 3, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(folder.path)"}"#))
        XCTAssertLessThan(Date().timeIntervalSince(start), 60, "ICU's backtracking is cut off (uncut it runs for hours)")
        XCTAssertEqual(refused["code"], .int(-31010), "\(refused)")
        XCTAssertEqual(refused["data"]?["file"], .string("adapter_config.json"))
        XCTAssertTrue(refused["data"]?["problem"]?.stringValue?.contains("target_modules") == true)
        d.closeInput()
        _ = d.exitCode()
    }

    func testLoRAMRunCancelsInsideItsTaylorPruneStage() throws {
        let (model, calibration) = try smallModel(examples: 100)
        let out = try temporaryDirectory().appendingPathComponent("out")
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let dataset = #"{"path":"\#(calibration.path)","format":"tokens"}"#
        d.request(1, "loram/run", #"""
            {"path":"\#(model.path)","outDir":"\#(out.path)","workDoneToken":"run",
             "prune":{"method":"taylor","ratio":0.5,"calibration":\#(dataset),"seqLen":64},
             "train":{"dataset":\#(dataset),"seqLen":64,"microBatch":1,"steps":2,"lr":0.001,"lora":{"r":4,"alpha":8,"targets":["q_proj"]}}}
            """#)
        // Wait until the prune stage has begun (its calibration pass alone takes about 30 s).
        XCTAssertTrue(d.wait(timeout: DaemonProcess.hang) { $0.contains { $0["params"]?["value"]?["stage"] == .string("prune") } }, "\(d.received.suffix(3))")
        Thread.sleep(forTimeInterval: 1)
        XCTAssertNil(d.received.first { $0["id"] == .int(1) })
        let cancelledAt = Date()
        d.notify("$/cancelRequest", #"{"id":1}"#)
        XCTAssertEqual(d.response(id: 1)?["error"]?["code"], .int(-32800))
        // The pass had about 29 s left idle; 10 s leaves room for a busy machine.
        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), 10, "the stage got the pipeline's token")
        d.request(2, "model/list")
        let list = d.response(id: 2)?["result"]
        XCTAssertEqual(list?["models"]?.arrayValue?.count, 0, "the pipeline unloads what it made, the half-pruned carrier included")
        XCTAssertEqual(list?["memory"]?["usedBytes"], .int(0))
        d.closeInput()
        _ = d.exitCode()
    }
}
