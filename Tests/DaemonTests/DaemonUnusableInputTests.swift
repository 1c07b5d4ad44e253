import Foundation
import XCTest
import RPC

/// Inputs that parse but cannot serve: a dataset with nothing to learn, a saved state whose
/// numbers a job cannot be built from, a tokenizer with ids past the model's embedding. Each is
/// refused up front with a contract error naming it, and the daemon answers the next request.
final class DaemonUnusableInputTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    func write(_ lines: [String], to url: URL) throws -> URL {
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    func testDatasetsWithNothingToLearnAreRefusedByTrainCreate() throws {
        let work = try temporaryDirectory()
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let cases: [(name: String, lines: [String], packing: Bool)] = [
            // Only empty examples with packing used to trap in the data loader (a precondition).
            ("empty-packed", [#"{"ids":[]}"#, #"{"ids":[]}"#], true),
            ("empty-truncated", [#"{"ids":[]}"#], false),
            // Every label masked: training used to "succeed" with loss 0.0.
            ("masked", [#"{"ids":[1,5,6,7],"labels":[-100,-100,-100,-100]}"#], false),
            ("masked-packed", [#"{"ids":[1,5,6,7],"labels":[-100,-100,-100,-100]}"#], true),
            // The only label sits where a shifted loss never counts it (position 0 of a row).
            ("first-only", [#"{"ids":[1,5,6],"labels":[1,-100,-100]}"#], false),
        ]
        for (i, c) in cases.enumerated() {
            let url = try write(c.lines, to: work.appendingPathComponent("\(c.name).jsonl"))
            let error = try XCTUnwrap(self.error(d, 10 + i, "train/create", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(url.path)","format":"tokens"},"seqLen":8,"microBatch":2,"steps":1,"lr":0.01,"packing":\#(c.packing)}"#), c.name)
            XCTAssertEqual(error["code"], .int(-32602), c.name)
            XCTAssertEqual(error["data"]?["field"], .string("dataset"), c.name)
            XCTAssertTrue(error["message"]?.stringValue?.contains("\(c.name).jsonl") == true, "\(c.name): \(error)")
        }
        // A Taylor calibration set with nothing labelled would score every head 0 (a tie broken by index).
        let maskedCalibration = work.appendingPathComponent("masked.jsonl")
        let pruneError = try XCTUnwrap(error(d, 20, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.3,"calibration":{"path":"\#(maskedCalibration.path)","format":"tokens"},"seqLen":8}"#))
        XCTAssertEqual(pruneError["data"]?["field"], .string("calibration"), "\(pruneError)")
        // A usable train set with an unusable eval set names evalDataset.
        let good = try write([#"{"ids":[1,5,6,7,8]}"#], to: work.appendingPathComponent("good.jsonl"))
        let masked = work.appendingPathComponent("masked.jsonl")
        let evalError = try XCTUnwrap(error(d, 30, "train/create", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(good.path)","format":"tokens"},"evalDataset":{"path":"\#(masked.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":1,"lr":0.01}"#))
        XCTAssertEqual(evalError["data"]?["field"], .string("evalDataset"))
        // Nothing was made, and the same daemon trains on the good file.
        let listed = try result(d, 31, "model/list", "{}")
        XCTAssertEqual(listed["jobs"], .array([]))
        XCTAssertEqual(listed["models"]?.arrayValue?.count, 1, "no pruned model")
        let created = try result(d, 32, "train/create", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(good.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":1,"lr":0.01,"packing":true}"#)
        XCTAssertNotNil(created["jobId"]?.stringValue)
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testASavedStateWithImpossibleNumbersIsAFormatError() throws {
        let work = try temporaryDirectory()
        let dataset = try write((0..<4).map { i in #"{"ids":[1,\#(5 + i),\#(9 + i),\#(20 + i),\#(30 + i)]}"# }, to: work.appendingPathComponent("train.jsonl"))
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let adapterId = try XCTUnwrap(try result(d, 1, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        let jobId = try XCTUnwrap(try result(d, 2, "train/create", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":4,"lr":0.01}"#)["jobId"]?.stringValue)
        _ = try result(d, 3, "train/step", #"{"jobId":"\#(jobId)","steps":2}"#)
        let saved = work.appendingPathComponent("saved")
        _ = try result(d, 4, "train/save", #"{"jobId":"\#(jobId)","path":"\#(saved.path)"}"#)
        let stateURL = saved.appendingPathComponent("state.json")
        let original = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
        // The intact state resumes.
        XCTAssertEqual(try result(d, 5, "train/resume", #"{"path":"\#(saved.path)","modelId":"\#(modelId)"}"#)["step"], .int(2))
        let edits: [(String, (inout [String: Any]) -> Void)] = [
            ("settings.microBatch", { s in var t = s["settings"] as! [String: Any]; t["microBatch"] = 0; s["settings"] = t }),
            ("settings.seqLen", { s in var t = s["settings"] as! [String: Any]; t["seqLen"] = -5; s["settings"] = t }),
            ("completedSteps", { s in s["completedSteps"] = 99 }),
            ("position", { s in s["position"] = ["epoch": 0, "index": 4000, "offset": 0] }),
            ("position", { s in s["position"] = ["epoch": 0, "index": 0, "offset": 1000] }),
            ("adapter.rank", { s in var a = s["adapter"] as! [String: Any]; a["rank"] = 1 << 40; s["adapter"] = a }),
            ("adapter.targets", { s in var a = s["adapter"] as! [String: Any]; a["targets"] = ["router"]; s["adapter"] = a }),
        ]
        for (i, (what, edit)) in edits.enumerated() {
            var state = original
            edit(&state)
            try JSONSerialization.data(withJSONObject: state).write(to: stateURL)
            let error = try XCTUnwrap(self.error(d, 10 + i, "train/resume", #"{"path":"\#(saved.path)","modelId":"\#(modelId)"}"#), what)
            XCTAssertEqual(error["code"], .int(-31010), "\(what): \(error)")
            XCTAssertEqual(error["data"]?["file"], .string("state.json"), what)
            XCTAssertTrue(error["data"]?["problem"]?.stringValue?.contains(what) == true, "\(what): \(error)")
        }
        XCTAssertEqual((try result(d, 30, "model/list", "{}")["jobs"])?.arrayValue?.count, 2, "the first job and the intact resume; no job from a bad state")
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testATokenizerWithIdsPastTheEmbeddingFailsTheLoad() throws {
        let work = try temporaryDirectory()
        let folder = work.appendingPathComponent("mismatched")
        try FileManager.default.copyItem(atPath: Self.tiny, toPath: folder.path)
        // The golden model (512 embedding rows) with a tokenizer that adds a token (tokenizers gives it id 512, the next after the vocabulary, whatever the file says).
        let tokenizerURL = folder.appendingPathComponent("tokenizer.json")
        var tokenizer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: tokenizerURL)) as? [String: Any])
        var added = try XCTUnwrap(tokenizer["added_tokens"] as? [[String: Any]])
        added.append(["id": 600, "content": "<|tool|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true])
        tokenizer["added_tokens"] = added
        try JSONSerialization.data(withJSONObject: tokenizer).write(to: tokenizerURL)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let error = try XCTUnwrap(self.error(d, 1, "model/load", #"{"path":"\#(folder.path)"}"#))
        XCTAssertEqual(error["code"], .int(-31010))
        XCTAssertEqual(error["data"]?["file"], .string("tokenizer.json"))
        XCTAssertTrue(error["data"]?["problem"]?.stringValue?.contains("ids up to 512") == true, "\(error)")
        XCTAssertEqual(try result(d, 2, "model/list", "{}")["models"], .array([]))
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }
}
