import Foundation
import XCTest
import RPC

extension DaemonCancellationTests {
    /// A training step checks its request's token between layers: `train/step` on a step of a few
    /// seconds answers RequestCancelled promptly, and the job goes on as if the step had not
    /// started (the next step is step 1, with the loss an uncancelled job's first step has).
    func testATrainingStepCancelsBetweenLayersAndTheJobGoesOn() throws {
        let (model, data) = try smallModel(examples: 64)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(model.path))
        let job = #"{"modelId":"\#(modelId)","dataset":{"path":"\#(data.path)","format":"tokens"},"packing":true,"seqLen":512,"microBatch":4,"steps":2,"lr":0.001,"seed":1}"#
        let first = try XCTUnwrap(try result(d, 1, "train/create", job)["jobId"]?.stringValue)
        let second = try XCTUnwrap(try result(d, 2, "train/create", job)["jobId"]?.stringValue)

        d.request(3, "train/step", #"{"jobId":"\#(first)"}"#)
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertNil(d.received.first { $0["id"] == .int(3) }, "the step ended before it could be cancelled")
        let cancelledAt = Date()
        d.notify("$/cancelRequest", #"{"id":3}"#)
        let answer = d.response(id: 3)
        XCTAssertEqual(answer?["error"]?["code"], .int(-32800), "\(answer ?? .null)")
        let cancelSeconds = Date().timeIntervalSince(cancelledAt)

        let resumed = try result(d, 4, "train/step", #"{"jobId":"\#(first)"}"#)
        let stepStarted = Date()
        let straight = try result(d, 5, "train/step", #"{"jobId":"\#(second)"}"#)
        let stepSeconds = Date().timeIntervalSince(stepStarted)
        // Between layers (8 of them, forward and backward), not at the step's end: against a whole
        // step timed on the same machine, so a busy machine (21-23 s a step) slows both alike.
        XCTAssertLessThan(cancelSeconds, stepSeconds / 2, "answered between layers, not at the step's end (step \(stepSeconds) s)")
        XCTAssertEqual(resumed["step"], .int(1))
        XCTAssertEqual(resumed["losses"], straight["losses"], "the cancelled step left no trace")
        d.closeInput()
        _ = d.exitCode()
    }
}
