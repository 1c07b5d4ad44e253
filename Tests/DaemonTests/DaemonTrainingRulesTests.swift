import Foundation
import XCTest
import RPC

/// The rules a training job and its plan share: the freeze rule (the plan counts the gradients
/// the job makes) and the settings rule (a request's settings and a saved state's are checked alike).
final class DaemonTrainingRulesTests: XCTestCase {
    /// Ten short token sequences, their first two positions unlabelled.
    func tokensDataset(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("train.jsonl")
        let lines = (0..<10).map { i -> String in
            let ids = [1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 }
            let labels = ids.enumerated().map { $0.offset < 2 ? -100 : $0.element }
            return #"{"ids":\#(ids),"labels":\#(labels)}"#
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    /// For each way of freezing a tied model, the plan charges 4 bytes of gradient for every
    /// parameter the job trains (its `parameters`, counted from the gradient buffers it made).
    func testThePlanCountsTheGradientsTheJobMakesForEveryFreeze() throws {
        let work = try temporaryDirectory()
        let model = work.appendingPathComponent("tied")
        XCTAssertEqual(try DaemonProcess.run(["make-model", "--preset", "tiny", "--tied", "--out", model.path]).status, 0)
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(model.path))
        let total = try XCTUnwrap(try result(d, 1, "model/list", "{}")["models"]?.arrayValue?.first?["parameters"]?.intValue)
        let vocabTimesHidden: Int64 = 512 * 64  // tiny preset
        // (freeze, untieEmbeddings, parameters trained)
        let cases: [(String, Bool, Int64?)] = [
            ("[]", false, total),
            (#"["lm_head"]"#, false, total - vocabTimesHidden),  // the one tied tensor is frozen with the head
            (#"["lm_head"]"#, true, total),  // untied: the embedding trains, the head (a copy) stays
            ("[]", true, total),  // untied, the head stays as it was even unnamed (the daemon crashed on this before)
            (#"["mlp", "norm"]"#, false, nil),
        ]
        for (i, (freeze, untie, expected)) in cases.enumerated() {
            let created = try result(d, 10 + i, "train/create", #"{"modelId":"\#(modelId)","freeze":\#(freeze),"untieEmbeddings":\#(untie),"dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":1,"steps":1,"lr":0.001}"#)
            let parameters = try XCTUnwrap(created["parameters"]?.intValue, "\(created)")
            if let expected { XCTAssertEqual(parameters, expected, "freeze \(freeze), untie \(untie)") }
            // One fp32 buffer per trainable tensor, each at its jemalloc size class (at most 25% over, 16 bytes for the smallest).
            let gradients = try XCTUnwrap(created["plan"]?["breakdown"]?["gradients"]?.intValue, "\(created)")
            XCTAssertGreaterThanOrEqual(gradients, 4 * parameters, "freeze \(freeze), untie \(untie): \(created)")
            XCTAssertLessThanOrEqual(gradients, 4 * parameters * 5 / 4 + 1024, "freeze \(freeze), untie \(untie): \(created)")
            _ = try result(d, 30 + i, "train/close", #"{"jobId":"\#(created["jobId"]?.stringValue ?? "")"}"#)
        }
        d.closeInput()
        _ = d.exitCode()
    }

    /// One settings rule: what train/create refuses by field, a saved state is refused for, naming
    /// the same setting.
    func testRequestAndSavedStateSettingsAreCheckedByOneRule() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny))
        let base = #""modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"tokens"}"#
        let refused: [(String, String)] = [
            (#""seqLen":1,"microBatch":1,"steps":1,"lr":0.1"#, "seqLen"),
            (#""seqLen":8,"microBatch":0,"steps":1,"lr":0.1"#, "microBatch"),
            (#""seqLen":8,"microBatch":1,"steps":0,"lr":0.1"#, "steps"),
            (#""seqLen":8,"microBatch":1,"steps":1,"lr":-1"#, "lr"),
            (#""seqLen":8,"microBatch":1,"steps":1,"lr":0.1,"gradAccum":0"#, "gradAccum"),
            (#""seqLen":8,"microBatch":1,"steps":1,"lr":0.1,"warmupSteps":-1"#, "warmupSteps"),
            (#""seqLen":8,"microBatch":1,"steps":1,"lr":0.1,"weightDecay":-0.5"#, "weightDecay"),
            (#""seqLen":8,"microBatch":1,"steps":1,"lr":0.1,"maxGradNorm":-1"#, "maxGradNorm"),
        ]
        for (i, (settings, field)) in refused.enumerated() {
            let error = try XCTUnwrap(self.error(d, 1 + i, "train/create", "{\(base),\(settings)}"), field)
            XCTAssertEqual(error["code"], .int(-32602), "\(field): \(error)")
            XCTAssertEqual(error["data"]?["field"], .string(field), "\(error)")
        }
        // maxGradNorm 0 turns clipping off; it is not refused.
        let created = try result(d, 20, "train/create", "{\(base),\"seqLen\":8,\"microBatch\":1,\"steps\":2,\"lr\":0.1,\"maxGradNorm\":0}")
        let jobId = try XCTUnwrap(created["jobId"]?.stringValue)
        let saved = work.appendingPathComponent("saved")
        _ = try result(d, 21, "train/save", #"{"jobId":"\#(jobId)","path":"\#(saved.path)"}"#)
        let stateURL = saved.appendingPathComponent("state.json")
        let original = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
        for (i, (key, value)) in [("warmupSteps", -1 as Any), ("weightDecay", -0.5), ("maxGradNorm", -1.0), ("gradAccum", 0), ("lr", 0.0)].enumerated() {
            var state = original
            var settings = try XCTUnwrap(state["settings"] as? [String: Any])
            settings[key] = value
            state["settings"] = settings
            try JSONSerialization.data(withJSONObject: state).write(to: stateURL)
            let error = try XCTUnwrap(self.error(d, 30 + i, "train/resume", #"{"path":"\#(saved.path)","modelId":"\#(modelId)"}"#), key)
            XCTAssertEqual(error["code"], .int(-31010), "\(key): \(error)")
            XCTAssertTrue(error["data"]?["problem"]?.stringValue?.contains("settings.\(key)") == true, "\(key): \(error)")
        }
        d.closeInput()
        _ = d.exitCode()
    }
}
