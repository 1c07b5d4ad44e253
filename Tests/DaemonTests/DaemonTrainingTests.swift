import Foundation
import XCTest
import RPC

/// train/* through the real process on the golden tiny model.
final class DaemonTrainingTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    /// A tokens dataset: `count` short sequences with some masked labels.
    func tokensDataset(in directory: URL, count: Int = 10) throws -> URL {
        let url = directory.appendingPathComponent("train.jsonl")
        let lines = (0..<count).map { i -> String in
            let ids = [1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 }
            let labels = ids.enumerated().map { $0.offset < 2 ? -100 : $0.element }
            return #"{"ids":\#(ids),"labels":\#(labels)}"#
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    func create(_ d: DaemonProcess, id: Int, modelId: String, dataset: URL, steps: Int = 6, extra: String = "") -> JSONValue? {
        d.request(id, "train/create", #"{"modelId":"\#(modelId)","freeze":["lm_head"],"dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":2,"gradAccum":2,"steps":\#(steps),"lr":0.002,"schedule":"cosine","warmupSteps":1,"seed":3\#(extra)}"#)
        return d.response(id: id)
    }

    func testFullParameterTrainingStepsSavesAndResumesExactly() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "model/list")
        let usedBefore = d.response(id: 1)?["result"]?["memory"]?["usedBytes"]?.intValue ?? -1

        // Straight: 6 steps.
        let straight = try XCTUnwrap(create(d, id: 2, modelId: modelId, dataset: dataset)?["result"], "\(d.received.last ?? .null)")
        let straightId = try XCTUnwrap(straight["jobId"]?.stringValue)
        XCTAssertGreaterThan(straight["plan"]?["peakBytes"]?.intValue ?? 0, 0)
        d.request(3, "train/step", #"{"jobId":"\#(straightId)","steps":6}"#)
        let all = try XCTUnwrap(d.response(id: 3)?["result"])
        guard case .array(let straightLosses)? = all["losses"] else { return XCTFail("\(all)") }
        XCTAssertEqual(straightLosses.count, 6)
        XCTAssertEqual(all["step"], .int(6))
        // The step ran in its planned arena: jemalloc holds at least the planned peak, and the plan is at its lower bound.
        let planned = try XCTUnwrap(all["arena"]?["plannedBytes"]?.intValue)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(all["arena"]?["measuredBytes"]?.intValue), planned)
        XCTAssertLessThan(Double(try XCTUnwrap(all["arena"]?["measuredBytes"]?.intValue)), Double(planned) * 1.25)
        XCTAssertEqual(all["arena"]?["lowerBoundBytes"]?.intValue, planned)
        XCTAssertLessThan(straightLosses.last!.doubleValue!, straightLosses.first!.doubleValue!, "the loss falls")

        // Interrupted: 2 steps, save, close, resume, 4 more.
        let first = try XCTUnwrap(create(d, id: 4, modelId: modelId, dataset: dataset)?["result"]?["jobId"]?.stringValue)
        d.request(5, "train/step", #"{"jobId":"\#(first)","steps":2}"#)
        guard case .array(let firstLosses)? = d.response(id: 5)?["result"]?["losses"] else { return XCTFail() }
        let saved = work.appendingPathComponent("checkpoint")
        d.request(6, "train/save", #"{"jobId":"\#(first)","path":"\#(saved.path)"}"#)
        XCTAssertNotNil(d.response(id: 6)?["result"]?["files"], "\(d.received.last ?? .null)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: saved.appendingPathComponent("model/model.safetensors").path))
        d.request(7, "train/close", #"{"jobId":"\#(first)"}"#)
        XCTAssertEqual(d.response(id: 7)?["result"], .null)
        d.request(8, "train/resume", #"{"path":"\#(saved.path)"}"#)
        let resumed = try XCTUnwrap(d.response(id: 8)?["result"], "\(d.received.last ?? .null)")
        XCTAssertEqual(resumed["step"], .int(2))
        let resumedId = try XCTUnwrap(resumed["jobId"]?.stringValue)
        d.request(9, "train/step", #"{"jobId":"\#(resumedId)","steps":4}"#)
        guard case .array(let restLosses)? = d.response(id: 9)?["result"]?["losses"] else { return XCTFail() }
        XCTAssertEqual(firstLosses + restLosses, straightLosses, "resumed losses equal the straight run's exactly")

        d.request(10, "train/step", #"{"jobId":"\#(resumedId)"}"#)
        XCTAssertEqual(d.response(id: 10)?["error"]?["data"]?["field"], .string("jobId"), "a finished job takes no more steps")
        for (i, id) in [straightId, resumedId].enumerated() {
            d.request(11 + i, "train/close", #"{"jobId":"\#(id)"}"#)
            XCTAssertEqual(d.response(id: 11 + i)?["result"], .null)
        }
        d.request(20, "model/list")
        XCTAssertEqual(d.response(id: 20)?["result"]?["memory"]?["usedBytes"]?.intValue, usedBefore, "closed jobs give their memory back")
        d.closeInput()
        _ = d.exitCode()
    }

    func testRunReportsProgressAndCancelStopsAtAStepBoundary() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let jobId = try XCTUnwrap(create(d, id: 1, modelId: modelId, dataset: dataset, steps: 4)?["result"]?["jobId"]?.stringValue)
        d.request(2, "train/run", #"{"jobId":"\#(jobId)","outDir":"\#(work.appendingPathComponent("run").path)","saveEvery":2,"workDoneToken":"t"}"#)
        let run = try XCTUnwrap(d.response(id: 2)?["result"], "\(d.received.last ?? .null)")
        XCTAssertEqual(run["step"], .int(4))
        guard case .array(let checkpoints)? = run["checkpoints"] else { return XCTFail() }
        XCTAssertEqual(checkpoints.count, 3, "steps 2 and 4, and the final state")
        let reports = d.received.filter { $0["params"]?["token"] == .string("t") && $0["params"]?["value"]?["kind"] == .string("report") }
            .compactMap { $0["params"]?["value"] }
        XCTAssertTrue(reports.contains { $0["step"] != nil && $0["loss"] != nil && $0["lr"] != nil && $0["tokensPerSecond"] != nil
                                         && $0["peakBytes"] != nil && $0["etaSeconds"] != nil }, "\(reports)")

        // A long run, cancelled: it stops at a step boundary and the job stays usable.
        let long = try XCTUnwrap(create(d, id: 3, modelId: modelId, dataset: dataset, steps: 100000)?["result"]?["jobId"]?.stringValue)
        d.request(4, "train/run", #"{"jobId":"\#(long)","workDoneToken":"long"}"#)
        XCTAssertTrue(d.wait { $0.contains { $0["params"]?["token"] == .string("long") && $0["params"]?["value"]?["step"] != nil } })
        d.notify("$/cancelRequest", #"{"id":4}"#)
        let error = try XCTUnwrap(d.response(id: 4)?["error"])
        XCTAssertEqual(error["code"], .int(-32800))
        let stoppedAt = try XCTUnwrap(error["data"]?["partial"]?["step"]?.intValue)
        d.request(5, "train/step", #"{"jobId":"\#(long)"}"#)
        XCTAssertEqual(d.response(id: 5)?["result"]?["step"], .int(stoppedAt + 1), "the state is intact and stepping continues")
        d.closeInput()
        _ = d.exitCode()
    }

    func testBadDatasetsAndParamsCreateNoJob() throws {
        let work = try temporaryDirectory()
        let bad = work.appendingPathComponent("bad.jsonl")
        try Data("{\"ids\":[1,2,3]}\n{\"ids\":[1,\"x\"]}\n".utf8).write(to: bad)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let error = try XCTUnwrap(create(d, id: 1, modelId: modelId, dataset: bad)?["error"])
        XCTAssertEqual(error["code"], .int(-31010))
        XCTAssertTrue(error["data"]?["problem"]?.stringValue?.hasPrefix("line 2:") == true, "\(error)")
        let good = try tokensDataset(in: work)
        for (i, (extra, field)) in [(#","seqLen":1"#, "seqLen"), (#","schedule":"sawtooth""#, "schedule"), (#","checkpointing":"maybe""#, "checkpointing"),
                                    (#","lr":-1"#, "lr")].enumerated() {
            // Later keys override earlier ones in our decoder; build the params with the bad value last.
            d.request(10 + i, "train/create", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(good.path)","format":"tokens"},"microBatch":1,"steps":1,"seqLen":8,"lr":0.01\#(extra)}"#)
            XCTAssertEqual(d.response(id: 10 + i)?["error"]?["data"]?["field"], .string(field), extra)
        }
        d.request(20, "model/list")
        XCTAssertEqual(d.response(id: 20)?["result"]?["jobs"], .array([]))
        d.closeInput()
        _ = d.exitCode()
    }

    func testCompletionsWithoutEOSGetAWarning() throws {
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("pc.jsonl")
        try Data((0..<4).map { #"{"prompt":"Question \#($0)?","completion":" Answer \#($0)."}"# }.joined(separator: "\n").utf8).write(to: dataset)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "train/create", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"prompt_completion"},"seqLen":32,"microBatch":1,"steps":1,"lr":0.01}"#)
        let result = try XCTUnwrap(d.response(id: 1)?["result"], "\(d.received.last ?? .null)")
        guard case .array(let warnings)? = result["warnings"] else { return XCTFail() }
        XCTAssertEqual(warnings.count, 1)
        let log = d.received.first { $0["method"] == .string("window/logMessage") }
        XCTAssertEqual(log?["params"]?["type"], .int(2))
        XCTAssertTrue(log?["params"]?["message"]?.stringValue?.contains("never learns to stop") == true)
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonProcess {
    /// model/load, returning the modelId (nil on error).
    func loadModel(_ path: String, id: Int = 999) -> String? {
        request(id, "model/load", #"{"path":"\#(path)"}"#)
        return response(id: id)?["result"]?["modelId"]?.stringValue
    }
}

extension DaemonTrainingTests {
    func testLoRATrainingSavesAPEFTAdapterThatLoadsAndServes() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"dropout":0.05,"targets":["q_proj","v_proj","down_proj","lm_head"],"seed":1}"#)
        let adapterId = try XCTUnwrap(d.response(id: 1)?["result"]?["adapterId"]?.stringValue, "\(d.received.last ?? .null)")
        d.request(2, "eval/perplexity", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16}"#)
        let before = try XCTUnwrap(d.response(id: 2)?["result"]?["loss"]?.doubleValue)
        d.request(3, "train/create", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":2,"steps":20,"lr":0.01,"checkpointing":"layer"}"#)
        let created = try XCTUnwrap(d.response(id: 3)?["result"], "\(d.received.last ?? .null)")
        let jobId = try XCTUnwrap(created["jobId"]?.stringValue)
        d.request(4, "train/run", #"{"jobId":"\#(jobId)"}"#)
        XCTAssertEqual(d.response(id: 4)?["result"]?["step"], .int(20))
        // The adapter object was trained in place: the same adapterId now gives a lower loss.
        d.request(5, "eval/perplexity", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16}"#)
        let after = try XCTUnwrap(d.response(id: 5)?["result"]?["loss"]?.doubleValue)
        XCTAssertLessThan(after, before * 0.8, "\(before) -> \(after)")
        let saved = work.appendingPathComponent("lora")
        d.request(6, "train/save", #"{"jobId":"\#(jobId)","path":"\#(saved.path)"}"#)
        XCTAssertNotNil(d.response(id: 6)?["result"])
        d.request(7, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(saved.appendingPathComponent("adapter").path)"}"#)
        let reloaded = try XCTUnwrap(d.response(id: 7)?["result"]?["adapterId"]?.stringValue, "\(d.received.last ?? .null)")
        d.request(8, "eval/perplexity", #"{"modelId":"\#(modelId)","adapterId":"\#(reloaded)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16}"#)
        XCTAssertEqual(try XCTUnwrap(d.response(id: 8)?["result"]?["loss"]?.doubleValue), after, accuracy: 1e-9, "the saved adapter is the trained one")
        d.request(9, "generate", #"{"modelId":"\#(modelId)","adapterId":"\#(reloaded)","ids":[1,5,9],"maxTokens":4}"#)
        XCTAssertEqual(d.response(id: 9)?["result"]?["usage"]?["completionTokens"], .int(4))
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonTrainingTests {
    func testOverBudgetChangesNothingAndItsSuggestionFits() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        // Room for the tiny model (~0.4 MB) and a small job, not for a big micro-batch (every job
        // plans ~1.6 MB of runtime bounds besides its buffers).
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":10000000}"#))
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        d.request(1, "model/list")
        let used = d.response(id: 1)?["result"]?["memory"]?["usedBytes"]
        let params = #"{"modelId":"\#(modelId)","freeze":["lm_head"],"dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":64,"steps":2,"lr":0.001"#
        d.request(2, "train/create", params + #","microBatch":16}"#)
        let error = try XCTUnwrap(d.response(id: 2)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(error["code"], .int(-31020))
        XCTAssertNotNil(error["data"]?["breakdown"])
        let changes = try XCTUnwrap(error["data"]?["suggestion"]?["changes"], "\(error)")
        d.request(3, "model/list")
        XCTAssertEqual(d.response(id: 3)?["result"]?["memory"]?["usedBytes"], used, "OverBudget charged nothing")
        XCTAssertEqual(d.response(id: 3)?["result"]?["jobs"], .array([]))
        // Applying the suggestion fits.
        let microBatch = changes["microBatch"]?.intValue ?? 16, gradAccum = changes["gradAccum"]?.intValue ?? 1
        let checkpointing = changes["checkpointing"]?.stringValue ?? "none"
        d.request(4, "train/create", params + #","microBatch":\#(microBatch),"gradAccum":\#(gradAccum),"checkpointing":"\#(checkpointing)"}"#)
        XCTAssertNotNil(d.response(id: 4)?["result"]?["jobId"], "\(d.received.last ?? .null)")
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonTrainingTests {
    /// Without packing no row is longer than the longest example, so the job plans (and runs) for
    /// that length, not the seqLen asked for; packing fills every row, so it plans for seqLen.
    func testTheJobIsPlannedForTheLongestSequenceTheDataCanProduce() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)  // sequences of 9 to 13 tokens
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let params = #"{"modelId":"\#(modelId)","freeze":["lm_head"],"dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":64,"microBatch":2,"steps":2,"lr":0.001"#
        d.request(1, "train/create", params + "}")
        let truncated = try XCTUnwrap(d.response(id: 1)?["result"]?["plan"], "\(d.received.last ?? .null)")
        XCTAssertEqual(truncated["seqLen"], .int(13))
        XCTAssertEqual(truncated["longestSequence"], .int(13))
        d.request(2, "train/create", params + #","packing":true}"#)
        let packed = try XCTUnwrap(d.response(id: 2)?["result"]?["plan"], "\(d.received.last ?? .null)")
        XCTAssertEqual(packed["seqLen"], .int(64))
        let a = try XCTUnwrap(truncated["breakdown"]?["activations"]?.intValue), b = try XCTUnwrap(packed["breakdown"]?["activations"]?.intValue)
        XCTAssertLessThan(a, b)
        // The shorter plan still runs every step.
        let jobId = try XCTUnwrap(d.response(id: 1)?["result"]?["jobId"]?.stringValue)
        d.request(3, "train/step", #"{"jobId":"\#(jobId)","steps":2}"#)
        XCTAssertEqual(d.response(id: 3, timeout: DaemonProcess.hang)?["result"]?["step"], .int(2), "\(d.received.last ?? .null)")
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonTrainingTests {
    /// `train/close {keepModel: true}`: a full-parameter job's weights become a model (LoRAM's
    /// aligned carrier) whose forward is the trained weights', with the job's memory given back.
    func testClosingAFullJobKeepsItsWeightsAsAModel() throws {
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let jobId = try XCTUnwrap(create(d, id: 1, modelId: modelId, dataset: dataset, steps: 2)?["result"]?["jobId"]?.stringValue)
        d.request(2, "train/step", #"{"jobId":"\#(jobId)","steps":2}"#)
        XCTAssertNotNil(d.response(id: 2, timeout: DaemonProcess.hang)?["result"])
        d.request(3, "model/forward", #"{"modelId":"\#(modelId)","ids":[1,5,9]}"#)
        let before = d.response(id: 3)?["result"]?["logits"]
        d.request(4, "train/close", #"{"jobId":"\#(jobId)","keepModel":true}"#)
        let trained = try XCTUnwrap(d.response(id: 4)?["result"]?["modelId"]?.stringValue, "\(d.received.last ?? .null)")
        d.request(5, "model/forward", #"{"modelId":"\#(trained)","ids":[1,5,9]}"#)
        let after = d.response(id: 5)?["result"]?["logits"]
        XCTAssertNotNil(after)
        XCTAssertNotEqual(before, after, "the trained weights differ from the original's")
        d.request(6, "model/list")
        let list = try XCTUnwrap(d.response(id: 6)?["result"])
        XCTAssertEqual(list["jobs"], .array([]))
        guard case .array(let models)? = list["models"] else { return XCTFail() }
        XCTAssertEqual(models.count, 2)
        // A LoRA job has no weights of its own to keep.
        d.request(7, "adapter/create", #"{"modelId":"\#(modelId)","r":2,"alpha":4,"targets":["q_proj"]}"#)
        let adapterId = try XCTUnwrap(d.response(id: 7)?["result"]?["adapterId"]?.stringValue)
        d.request(9, "train/create", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":1,"steps":1,"lr":0.001}"#)
        let loraJob = try XCTUnwrap(d.response(id: 9)?["result"]?["jobId"]?.stringValue, "\(d.received.last ?? .null)")
        d.request(10, "train/close", #"{"jobId":"\#(loraJob)","keepModel":true}"#)
        XCTAssertEqual(d.response(id: 10)?["error"]?["data"]?["field"], .string("keepModel"))
        d.closeInput()
        _ = d.exitCode()
    }
}
