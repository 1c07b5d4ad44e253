import Foundation
import XCTest
import RPC

/// `loram/run`: the whole pipeline through the real process. On the small model (the issue's
/// check): structured 0.5 + alignment + NF4 + LoRA, and the recovered adapter improves the
/// original's perplexity on held-out text, with the carrier's peak well under the full model's.
final class DaemonLoRAMRunTests: XCTestCase {
    /// `loramd make-model` / `make-dataset`.
    func make(_ arguments: [String]) throws {
        let (status, output) = try DaemonProcess.run(arguments)
        XCTAssertEqual(status, 0, output)
    }

    func testTheSmallModelsPipelineImprovesTheOriginalAndTrainsInLessMemory() throws {
        let work = try temporaryDirectory()
        let model = work.appendingPathComponent("small"), data = work.appendingPathComponent("data"), out = work.appendingPathComponent("out")
        try make(["make-model", "--preset", "small", "--out", model.path])
        try make(["make-dataset", "--out", data.path, "--train-bytes", "60000", "--eval-bytes", "8000"])
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let train = #"{"path":"\#(data.appendingPathComponent("train.jsonl").path)","format":"text"}"#
        let eval = #"{"path":"\#(data.appendingPathComponent("eval.jsonl").path)","format":"text"}"#
        d.request(1, "loram/run", #"""
            {"path":"\#(model.path)","outDir":"\#(out.path)","workDoneToken":"run",
             "prune":{"method":"l2","ratio":0.5,"layers":[1,7]},
             "align":{"dataset":\#(train),"seqLen":64,"microBatch":4,"steps":4,"lr":0.00002,"packing":true},
             "quantize":"nf4",
             "train":{"dataset":\#(train),"seqLen":64,"microBatch":4,"steps":24,"lr":0.003,"packing":true,
                      "lora":{"r":8,"alpha":16,"targets":["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj","lm_head"]}},
             "eval":{"datasets":[\#(eval)],"seqLen":64,"maxSamples":40}}
            """#)
        let result = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["result"], "\(d.received.last ?? .null)")
        let report = try XCTUnwrap(result["report"])
        print("loram/run report: \(report)")

        // The carrier is the 0.5-pruned model in NF4; the reduction is the paper's parameter ratio.
        let original = try XCTUnwrap(report["parameters"]?["original"]?.doubleValue), carrier = try XCTUnwrap(report["parameters"]?["carrier"]?.doubleValue)
        XCTAssertEqual(original, 27_795_968)
        XCTAssertEqual(try XCTUnwrap(report["reduction"]?.doubleValue), original / carrier, accuracy: 1e-9)
        XCTAssertGreaterThan(original / carrier, 1.4)

        // The recovered adapter improves the original on held-out text.
        guard case .array(let perplexities)? = report["perplexity"], let ppl = perplexities.first else { return XCTFail("\(report)") }
        let before = try XCTUnwrap(ppl["original"]?.doubleValue), after = try XCTUnwrap(ppl["originalWithRecoveredAdapter"]?.doubleValue)
        // A random model is close to uniform (~vocab 4096); the adapter learns the text's statistics
        // on the carrier and keeps most of the gain on the original (measured: 4470 -> ~1115).
        XCTAssertLessThan(after, 0.5 * before, "the recovered adapter lowers the original's perplexity")
        XCTAssertLessThan(try XCTUnwrap(ppl["carrierWithAdapter"]?.doubleValue), try XCTUnwrap(ppl["carrier"]?.doubleValue))

        // Memory: the measured peak (jemalloc, every millisecond) stays under the plan, which is above
        // it by no more than its stated bounds (~1.7 MB here, measured 1.5%), and well under the full model's LoRA peak.
        let planned = try XCTUnwrap(report["memory"]?["plannedPeakBytes"]?.doubleValue)
        let measured = try XCTUnwrap(report["memory"]?["measuredPeakBytes"]?.doubleValue)
        let full = try XCTUnwrap(report["memory"]?["fullModelLoRAPlannedPeakBytes"]?.doubleValue)
        XCTAssertLessThanOrEqual(measured, planned, "measured \(measured) vs planned \(planned)")
        XCTAssertLessThanOrEqual(planned, 1.05 * measured, "measured \(measured) vs planned \(planned)")
        XCTAssertLessThan(planned * 1.4, full, "the carrier trains in well under the full model's memory")

        // Files: the carrier loads back as a pruned model; the recovered adapter loads on the original.
        let files = try XCTUnwrap(report["files"])
        for key in ["carrier", "carrierAdapter", "recoveredAdapter", "report"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: try XCTUnwrap(files[key]?.stringValue)), key)
        }
        let modelId = try XCTUnwrap(result["modelId"]?.stringValue)
        d.request(2, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(try XCTUnwrap(files["recoveredAdapter"]?.stringValue))"}"#)
        XCTAssertNotNil(d.response(id: 2)?["result"]?["adapterId"], "\(d.received.last ?? .null)")
        d.request(3, "model/load", #"{"path":"\#(try XCTUnwrap(files["carrier"]?.stringValue))"}"#)
        XCTAssertNotNil(d.response(id: 3)?["result"]?["modelId"], "\(d.received.last ?? .null)")
        // Progress (coalesced, so a fast stage may be overtaken by the next): training steps report, the last report is 100.
        let reports = d.received.filter { $0["method"] == .string("$/progress") }.compactMap { $0["params"]?["value"] }
        XCTAssertTrue(reports.contains { $0["stage"] == .string("train") && $0["step"] != nil })
        XCTAssertEqual(reports.last { $0["kind"] == .string("report") }?["percentage"], .int(100))
        // The percentage never goes back, and each stage's share is its work (PipelineProgress, in
        // forward-token equivalents): load 200, prune 50, check 3 x 8 x 64, align 4 x 4 x 64 x 3,
        // quantize 700, train 24 x 4 x 64 x 3, recover 50, evaluate 4 x 40 x 64, save 50; so the
        // training runs from 5558 / 34330 = 16.19% to 23990 / 34330 = 69.88% (equal shares had it at 62.5-75%).
        // Reports are coalesced, so which ones arrive varies; their values do not (whole percents, rounded down).
        let percentages = reports.compactMap { $0["percentage"]?.doubleValue }
        XCTAssertEqual(percentages, percentages.sorted(), "the percentage never goes back")
        for report in reports where report["stage"] == .string("train") {
            let value = try XCTUnwrap(report["percentage"]?.doubleValue, "\(report)")
            let step = Double(report["step"]?.intValue ?? 0)  // 0: the stage's begin
            XCTAssertEqual(value, (100 * (5558 + 18432 * step / 24) / 34330).rounded(.down), "\(report)")
        }
        XCTAssertTrue(reports.contains { $0["stage"] == .string("evaluate") && ($0["percentage"]?.doubleValue ?? 0) > 70 }, "evaluate reports per arm")
        d.closeInput()
        _ = d.exitCode()
    }

    /// A failing stage names itself and the field (prefixed with its part of the params), and
    /// everything the pipeline had made is unloaded again.
    func testAFailingStageNamesItselfAndLeavesNothingBehind() throws {
        let work = try temporaryDirectory()
        let tiny = DaemonModelTests.tiny
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        // A dataset that is not there is found before the original is loaded: no stage ran.
        d.request(5, "loram/run", #"""
            {"path":"\#(tiny)","outDir":"\#(work.path)","prune":{"method":"l2","ratio":0.5},
             "train":{"dataset":{"path":"\#(work.path)/data.jsonl","format":"text"},"seqLen":16,"microBatch":1,"steps":1,"lr":0.001},
             "eval":[{"path":"/no/such/eval.jsonl","format":"text"}]}
            """#)
        let missing = try XCTUnwrap(d.response(id: 5, timeout: DaemonProcess.hang)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(missing["code"], .int(-31001))
        XCTAssertEqual(missing["data"]?["field"], .string("train.dataset.path"))
        XCTAssertNil(missing["data"]?["stage"])
        try Data("{\"text\":\"hello\"}\n".utf8).write(to: work.appendingPathComponent("data.jsonl"))
        d.request(6, "loram/run", #"""
            {"path":"\#(tiny)","outDir":"\#(work.path)","prune":{"method":"l2","ratio":0.5},
             "train":{"dataset":{"path":"\#(work.path)/data.jsonl","format":"text"},"seqLen":16,"microBatch":1,"steps":1,"lr":0.001},
             "eval":[{"path":"/no/such/eval.jsonl","format":"text"}]}
            """#)
        XCTAssertEqual(d.response(id: 6, timeout: DaemonProcess.hang)?["error"]?["data"]?["field"], .string("eval[0].path"))
        // A dataset whose contents the model cannot take fails in the stage that reads it.
        let badData = work.appendingPathComponent("bad.jsonl")
        try Data(#"{"ids":[1,2,99999,4,5]}"#.utf8).write(to: badData)
        d.request(1, "loram/run", #"""
            {"path":"\#(tiny)","outDir":"\#(work.path)","prune":{"method":"l2","ratio":0.5},
             "train":{"dataset":{"path":"\#(badData.path)","format":"tokens"},"seqLen":16,"microBatch":1,"steps":1,"lr":0.001}}
            """#)
        let error = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(error["code"], .int(-31010))
        XCTAssertEqual(error["data"]?["stage"], .string("train"))
        XCTAssertEqual(error["data"]?["file"], .string("bad.jsonl"))
        d.request(2, "model/list")
        let list = try XCTUnwrap(d.response(id: 2)?["result"])
        XCTAssertEqual(list["models"], .array([]))
        XCTAssertEqual(list["adapters"], .array([]))
        XCTAssertEqual(list["jobs"], .array([]))
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(0))
        // A bad pruning ratio is refused by the decode, before any stage (so no data.stage), ahead of train's gaps.
        d.request(3, "loram/run", #"{"path":"\#(tiny)","outDir":"\#(work.path)","prune":{"method":"l2","ratio":1.5},"train":{}}"#)
        let bad = try XCTUnwrap(d.response(id: 3, timeout: DaemonProcess.hang)?["error"])
        XCTAssertNil(bad["data"]?["stage"])
        XCTAssertEqual(bad["data"]?["field"], .string("prune.ratio"))
        d.closeInput()
        _ = d.exitCode()
    }

    /// The pipeline on a GGUF original: the carrier folder carries the tokenizer its metadata
    /// describes, and the recovered adapter is also written as a GGUF LoRA file that loads back
    /// onto the original with the same logits.
    func testPipelineOnAGGUFWritesTheRecoveredAdapterAsGGUF() throws {
        let work = try temporaryDirectory()
        let model = work.appendingPathComponent("tiny.gguf"), data = work.appendingPathComponent("data"), out = work.appendingPathComponent("out")
        try make(["make-model", "--preset", "tiny", "--gguf", model.path, "--gguf-type", "F32"])
        try make(["make-dataset", "--out", data.path, "--train-bytes", "20000", "--eval-bytes", "4000"])
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let train = #"{"path":"\#(data.appendingPathComponent("train.jsonl").path)","format":"text"}"#
        let eval = #"{"path":"\#(data.appendingPathComponent("eval.jsonl").path)","format":"text"}"#
        d.request(1, "loram/run", #"""
            {"path":"\#(model.path)","dtype":"f32","outDir":"\#(out.path)",
             "prune":{"method":"l2","ratio":0.5,"layers":[0,2]},
             "quantize":"nf4",
             "train":{"dataset":\#(train),"seqLen":32,"microBatch":2,"steps":6,"lr":0.003,"packing":true},
             "eval":{"datasets":[\#(eval)],"seqLen":32,"maxSamples":8}}
            """#)
        let result = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["result"], "\(d.received.last ?? .null)")
        let files = try XCTUnwrap(result["report"]?["files"])
        let gguf = try XCTUnwrap(files["recoveredAdapterGGUF"]?.stringValue)
        XCTAssertTrue(FileManager.default.fileExists(atPath: gguf))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("carrier/tokenizer.json").path))
        let originalId = try XCTUnwrap(result["modelId"]?.stringValue), recoveredId = try XCTUnwrap(result["adapterId"]?.stringValue)
        d.request(2, "adapter/load", #"{"modelId":"\#(originalId)","path":"\#(gguf)"}"#)
        let loadedId = try XCTUnwrap(d.response(id: 2)?["result"]?["adapterId"]?.stringValue, "\(d.received.last ?? .null)")
        let ids = [1, 40, 41, 300, 17, 9]
        func logits(_ id: Int, _ adapter: String) throws -> JSONValue {
            d.request(id, "model/forward", #"{"modelId":"\#(originalId)","adapterId":"\#(adapter)","ids":\#(ids),"logits":"all"}"#)
            return try XCTUnwrap(d.response(id: id)?["result"]?["logits"], "\(d.received.last ?? .null)")
        }
        let recovered = try logits(4, recoveredId)
        XCTAssertEqual(try logits(3, loadedId), recovered)
        guard case .array(let rows) = recovered else { return XCTFail("\(recovered)") }
        XCTAssertEqual(rows.count, ids.count)
    }
}
