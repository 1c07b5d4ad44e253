import Foundation
import XCTest
import RPC

/// `model/compare` and `loram/run`'s diagnostics, verdict, reductions, per-stage peaks, alignment
/// defaults and `carrier {path}`: on the golden tiny model, and on SmolLM2-135M when it is cached.
final class DaemonCarrierCheckTests: XCTestCase {
    static var smolLM2: URL {
        let cache = ProcessInfo.processInfo.environment["LORAMD_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/loramd")
        return cache.appendingPathComponent("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    }

    /// A small text dataset: Python source, as the issue's domain (written here, so the test needs no file of the machine's).
    func pythonText(_ directory: URL) throws -> String {
        let text = """
        def merge_sorted(left, right):
            \"\"\"Merge two sorted lists into one sorted list.\"\"\"
            result = []
            i = j = 0
            while i < len(left) and j < len(right):
                if left[i] <= right[j]:
                    result.append(left[i])
                    i += 1
                else:
                    result.append(right[j])
                    j += 1
            result.extend(left[i:])
            result.extend(right[j:])
            return result

        class Counter(dict):
            def __missing__(self, key):
                return 0

            def most_common(self, n=None):
                items = sorted(self.items(), key=lambda kv: kv[1], reverse=True)
                return items if n is None else items[:n]

        def read_config(path):
            import json
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        """
        let url = directory.appendingPathComponent("python.jsonl")
        var lines = ""
        for _ in 0..<4 {
            let data = try JSONSerialization.data(withJSONObject: ["text": text])
            lines += String(decoding: data, as: UTF8.self) + "\n"
        }
        try lines.write(to: url, atomically: true, encoding: .utf8)
        return #"{"path":"\#(url.path)","format":"text"}"#
    }

    func testModelCompareOnTheTinyModel() throws {
        let work = try temporaryDirectory()
        let data = try pythonText(work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let original = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(DaemonModelTests.tiny)"}"#)["modelId"]?.stringValue)
        let same = try XCTUnwrap(try result(d, 2, "model/prune", #"{"modelId":"\#(original)","method":"l2","ratio":0.0}"#)["modelId"]?.stringValue)
        let halved = try XCTUnwrap(try result(d, 3, "model/prune", #"{"modelId":"\#(original)","method":"l2","ratio":0.5}"#)["modelId"]?.stringValue)

        let identical = try result(d, 4, "model/compare", #"{"modelId":"\#(original)","otherModelId":"\#(same)","dataset":\#(data),"seqLen":32,"maxSamples":3}"#)
        XCTAssertEqual(try XCTUnwrap(identical["klPerToken"]?.doubleValue), 0, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(identical["perplexityRatio"]?.doubleValue), 1, accuracy: 1e-9)
        XCTAssertEqual(identical["top1Agreement"]?.doubleValue, 1)
        XCTAssertEqual(identical["sequences"], .int(3))
        XCTAssertEqual(identical["tokens"], .int(3 * 31))
        XCTAssertEqual(identical["verdict"]?["level"], .string("close"))
        XCTAssertEqual(identical["verdict"]?["suggestions"], .array([]))

        // The perplexities are eval/perplexity's on the same sample.
        let far = try result(d, 5, "model/compare", #"{"modelId":"\#(original)","otherModelId":"\#(halved)","dataset":\#(data),"seqLen":32,"maxSamples":3}"#)
        let ppl = try result(d, 6, "eval/perplexity", #"{"modelId":"\#(halved)","dataset":\#(data),"seqLen":32,"maxSamples":3}"#)
        XCTAssertEqual(try XCTUnwrap(far["perplexity"]?["other"]?.doubleValue), try XCTUnwrap(ppl["perplexity"]?.doubleValue), accuracy: 1e-6)
        XCTAssertGreaterThan(try XCTUnwrap(far["klPerToken"]?.doubleValue), 0)

        // Refusals name their field; the sessions' charges are gone afterwards.
        XCTAssertEqual(error(d, 7, "model/compare", #"{"modelId":"\#(original)","otherModelId":"m-none","dataset":\#(data)}"#)?["data"]?["field"], .string("otherModelId"))
        XCTAssertEqual(error(d, 8, "model/compare", #"{"modelId":"\#(original)","otherModelId":"\#(same)","dataset":\#(data),"seqLen":1}"#)?["data"]?["field"], .string("seqLen"))
        XCTAssertEqual(error(d, 9, "model/compare", #"{"modelId":"\#(original)","otherModelId":"\#(same)","dataset":\#(data),"maxSamples":0}"#)?["data"]?["field"], .string("maxSamples"))
        let list = try result(d, 10, "model/list", "{}")
        let models = try result(d, 11, "model/list", "{}")["models"]
        let weights = (models?.arrayValue ?? []).reduce(Int64(0)) { $0 + ($1["bytes"]?.intValue ?? 0) }
        XCTAssertEqual(list["memory"]?["usedBytes"]?.intValue, weights, "only the models stay charged")
        d.closeInput()
        _ = d.exitCode()
    }

    /// loram/run on the tiny model (bf16): diagnostics before training, the verdict after, both
    /// reductions, tokens/s, align and train peaks, the aligned carrier kept in bf16; then a second
    /// run starts from the saved aligned carrier instead of pruning.
    func testPipelineReportsAndStartsAgainFromTheSavedCarrier() throws {
        let work = try temporaryDirectory()
        let data = try pythonText(work)
        let out = work.appendingPathComponent("out"), again = work.appendingPathComponent("again")
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "loram/run", #"""
            {"path":"\#(DaemonModelTests.tiny)","dtype":"bf16","outDir":"\#(out.path)","workDoneToken":"run",
             "prune":{"method":"l2","ratio":0.5},
             "align":{"dataset":\#(data),"steps":2,"seqLen":32,"microBatch":2},
             "quantize":"nf4",
             "diagnostics":{"seqLen":32,"maxSamples":2},
             "train":{"dataset":\#(data),"seqLen":32,"microBatch":2,"steps":3,"lr":0.003},
             "eval":{"datasets":[\#(data)],"seqLen":32,"maxSamples":2}}
            """#)
        let first = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["result"], "\(d.received.last ?? .null)")
        let report = try XCTUnwrap(first["report"])

        // Diagnostics after pruning and after alignment, with KL and a level.
        for key in ["afterPrune", "afterAlign"] {
            let check = try XCTUnwrap(report["diagnostics"]?[key], key)
            XCTAssertGreaterThan(try XCTUnwrap(check["klPerToken"]?.doubleValue), 0, key)
            XCTAssertNotNil(check["verdict"]?["level"]?.stringValue, key)
        }
        // The verdict compares the original with and without the recovered adapter, on the eval data.
        let ppl = try XCTUnwrap(report["perplexity"]?.arrayValue?.first)
        XCTAssertEqual(report["verdict"]?["originalPerplexity"], ppl["original"])
        XCTAssertEqual(report["verdict"]?["recoveredPerplexity"], ppl["originalWithRecoveredAdapter"])
        let change = try XCTUnwrap(report["verdict"]?["changePercent"]?.doubleValue)
        let expected = 100 * (try XCTUnwrap(ppl["originalWithRecoveredAdapter"]?.doubleValue) / (try XCTUnwrap(ppl["original"]?.doubleValue)) - 1)
        XCTAssertEqual(change, expected, accuracy: 1e-9)
        XCTAssertEqual(report["verdict"]?["effect"]?.stringValue, change < -0.5 ? "improved" : change > 0.5 ? "worse" : "unchanged")

        // Reductions: parameters (model/prune's) and the paper's storage accounting (×4 for NF4).
        let parameters = try XCTUnwrap(report["reductions"]?["parameters"]?.doubleValue)
        XCTAssertEqual(try XCTUnwrap(report["reductions"]?["paperStorage"]?.doubleValue), 4 * parameters, accuracy: 1e-9)
        XCTAssertEqual(report["reduction"]?.doubleValue, parameters)
        // Each stage's planned and measured peak; alignment's planned peak holds the fp32 copy. The
        // measured peak stays under the plan, and the plan is over it by little more than its stated
        // bounds (small objects and thread caches, the adapter's objects, OpenBLAS's table: 1.7 MB
        // on this tiny model; measured 1.3-1.77 MB unused, the most in a clean-clone CI run), with
        // 0.5 MB beside them for what a step of so small a job may leave untouched.
        for stage in ["align", "train"] {
            let planned = try XCTUnwrap(report["memory"]?["stages"]?[stage]?["plannedPeakBytes"]?.doubleValue, stage)
            let measured = try XCTUnwrap(report["memory"]?["stages"]?[stage]?["measuredPeakBytes"]?.doubleValue, stage)
            XCTAssertLessThanOrEqual(measured, planned, "\(stage): measured \(measured), planned \(planned)")
            XCTAssertLessThanOrEqual(planned - measured, 2_250_000, "\(stage): measured \(measured), planned \(planned)")
        }
        XCTAssertEqual(report["memory"]?["stages"]?["train"]?["plannedPeakBytes"], report["memory"]?["plannedPeakBytes"])
        // Throughput of both training stages, and in their progress reports.
        XCTAssertGreaterThan(try XCTUnwrap(report["align"]?["tokensPerSecond"]?.doubleValue), 0)
        XCTAssertGreaterThan(try XCTUnwrap(report["training"]?["tokensPerSecond"]?.doubleValue), 0)
        // The aligned carrier is kept (and saved) in the original's bf16, not the job's fp32.
        XCTAssertEqual(report["align"]?["dtype"], .string("bf16"))
        let carrierDirectory = try XCTUnwrap(report["files"]?["carrier"]?.stringValue)
        let saved = try XCTUnwrap(try result(d, 5, "model/load", #"{"path":"\#(carrierDirectory)"}"#)["modelId"]?.stringValue)
        let listed = try result(d, 6, "model/list", "{}")["models"]?.arrayValue?.first { $0["modelId"]?.stringValue == saved }
        XCTAssertEqual(listed?["dtype"], JSONValue.string("bf16"), "saved as it was kept")
        _ = try result(d, 7, "model/unload", #"{"modelId":"\#(saved)"}"#)
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: carrierDirectory).appendingPathComponent("loram_pruning.json"))) as! [String: Any]
        XCTAssertEqual((manifest["alignment"] as? [String: Any])?["steps"] as? Int, 2)

        // Again from the saved aligned carrier: no pruning, the same reduction, the alignment known.
        d.request(2, "loram/run", #"""
            {"path":"\#(DaemonModelTests.tiny)","dtype":"bf16","outDir":"\#(again.path)","carrier":{"path":"\#(carrierDirectory)"},
             "diagnostics":{"seqLen":32,"maxSamples":2},
             "train":{"dataset":\#(data),"seqLen":32,"microBatch":2,"steps":2,"lr":0.003}}
            """#)
        let second = try XCTUnwrap(d.response(id: 2, timeout: DaemonProcess.hang)?["result"]?["report"], "\(d.received.last ?? .null)")
        XCTAssertEqual(try XCTUnwrap(second["reduction"]?.doubleValue), parameters, accuracy: 1e-12)
        // The saved carrier is exactly the aligned one as kept (bf16, norms included).
        let klSaved = try XCTUnwrap(second["diagnostics"]?["afterPrune"]?["klPerToken"]?.doubleValue)
        let klAligned = try XCTUnwrap(report["diagnostics"]?["afterAlign"]?["klPerToken"]?.doubleValue)
        XCTAssertEqual(klSaved, klAligned, accuracy: 1e-12)
        XCTAssertNotEqual(klSaved, try XCTUnwrap(report["diagnostics"]?["afterPrune"]?["klPerToken"]?.doubleValue), accuracy: 1e-3 * klAligned)
        XCTAssertNil(second["seconds"]?["prune"])
        XCTAssertEqual(second["verdict"]?["heldOut"], .bool(false), "no eval data: measured on the training sample")
        // A folder that is not a carrier, and prune with carrier, are refused.
        XCTAssertEqual(error(d, 3, "loram/run", #"{"path":"\#(DaemonModelTests.tiny)","outDir":"\#(again.path)","carrier":{"path":"\#(DaemonModelTests.tiny)"},"train":{"dataset":\#(data),"seqLen":32,"microBatch":2,"steps":2,"lr":0.003}}"#)?["data"]?["field"],
                       .string("carrier.path"))
        XCTAssertEqual(error(d, 4, "loram/run", #"{"path":"\#(DaemonModelTests.tiny)","outDir":"\#(again.path)","carrier":{"path":"\#(carrierDirectory)"},"prune":{"method":"l2","ratio":0.5},"train":{"dataset":\#(data),"seqLen":32,"microBatch":2,"steps":2,"lr":0.003}}"#)?["data"]?["field"],
                       .string("carrier"))
        d.closeInput()
        _ = d.exitCode()
    }

    /// Alignment of a tied model, each `align.embeddings` mode: `freeze` (default) keeps the carrier
    /// tied and its size; `untie` saves it untied with the original's head beside the trained input
    /// embedding (V × h more weights); `train` keeps it tied. Each recovers onto the tied original.
    func testTiedModelAlignmentModes() throws {
        let work = try temporaryDirectory()
        let data = try pythonText(work)
        let model = work.appendingPathComponent("tied")
        let (status, output) = try DaemonProcess.run(["make-model", "--preset", "tiny", "--tied", "--out", model.path])
        XCTAssertEqual(status, 0, output)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        var carrierBytes: [String: Int64] = [:]
        for (index, mode) in ["freeze", "untie", "train", "default"].enumerated() {
            let out = work.appendingPathComponent("out-\(mode)")
            let embeddings = mode == "default" ? "" : #","embeddings":"\#(mode)""#
            d.request(10 + index, "loram/run", #"""
                {"path":"\#(model.path)","outDir":"\#(out.path)","diagnostics":false,"prune":{"method":"l2","ratio":0.5},
                 "align":{"dataset":\#(data),"steps":2,"seqLen":32,"microBatch":2,"lr":0.001\#(embeddings)},
                 "train":{"dataset":\#(data),"seqLen":32,"microBatch":2,"steps":1,"lr":0.003}}
                """#)
            let run = try XCTUnwrap(d.response(id: 10 + index, timeout: DaemonProcess.hang)?["result"], "\(mode): \(d.received.last ?? .null)")
            let report = try XCTUnwrap(run["report"])
            XCTAssertEqual(report["align"]?["embeddings"], .string(mode == "default" ? "freeze" : mode))
            XCTAssertEqual(report["diagnostics"]?["afterPrune"], .null, "diagnostics: false")
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("carrier/config.json"))) as! [String: Any]
            XCTAssertEqual(config["tie_word_embeddings"] as? Bool, mode != "untie", mode)
            carrierBytes[mode] = report["bytes"]?["carrier"]?.intValue
            XCTAssertNotNil(run["adapterId"]?.stringValue, "recovered onto the tied original")
            for key in ["adapterId", "carrierAdapterId"] { _ = try result(d, 100 + index * 10 + (key == "adapterId" ? 0 : 1), "adapter/unload", #"{"adapterId":"\#(run[key]!.stringValue!)"}"#) }
            for key in ["prunedModelId", "modelId"] { _ = try result(d, 102 + index * 10 + (key == "modelId" ? 1 : 0), "model/unload", #"{"modelId":"\#(run[key]!.stringValue!)"}"#) }
        }
        // The untied carrier holds the head beside the embedding: vocab × hidden more fp32 weights (tiny: 512 × 64).
        XCTAssertEqual(try XCTUnwrap(carrierBytes["untie"]) - (try XCTUnwrap(carrierBytes["freeze"])), 512 * 64 * 4)
        XCTAssertEqual(carrierBytes["train"], carrierBytes["freeze"])
        XCTAssertEqual(carrierBytes["default"], carrierBytes["freeze"])
        d.closeInput()
        _ = d.exitCode()
    }

    // MARK: SmolLM2-135M (skipped when not cached)

    func smolLM2() throws -> String {
        guard FileManager.default.fileExists(atPath: Self.smolLM2.path) else {
            throw XCTSkip("SmolLM2-135M-Instruct is not cached; run scripts/fetch-model smollm2")
        }
        return Self.smolLM2.path
    }

    /// The issue's far carrier: l2 at 0.5 on layers [4, 28) without alignment. The check finds it
    /// far (measured on 4 rows of 32 tokens: KL 6.00 nats/token, perplexity ×371), warns with
    /// concrete suggestions, and stopIfFar stops before any LoRA step.
    func testHeavyPruningWithoutAlignmentIsFarWarnsAndStops() throws {
        let path = try smolLM2()
        let work = try temporaryDirectory()
        let data = try pythonText(work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "loram/run", #"""
            {"path":"\#(path)","outDir":"\#(work.appendingPathComponent("out").path)","workDoneToken":"run","stopIfFar":true,
             "prune":{"method":"l2","ratio":0.5,"layers":[4,28]},
             "diagnostics":{"seqLen":32,"maxSamples":4},
             "train":{"dataset":\#(data),"seqLen":32,"microBatch":1,"steps":1,"lr":0.0005}}
            """#)
        let result = try XCTUnwrap(d.response(id: 1, timeout: 900)?["result"], "\(d.received.last ?? .null)")
        let report = try XCTUnwrap(result["report"])
        XCTAssertEqual(report["stoppedBefore"], .string("train"))
        XCTAssertEqual(result["adapterId"], .null)
        let check = try XCTUnwrap(report["diagnostics"]?["afterPrune"])
        XCTAssertEqual(check["verdict"]?["level"], .string("far"))
        XCTAssertGreaterThan(try XCTUnwrap(check["klPerToken"]?.doubleValue), 4.5)
        XCTAssertGreaterThan(try XCTUnwrap(check["perplexityRatio"]?.doubleValue), 100)
        let warnings = try XCTUnwrap(report["diagnostics"]?["warnings"]?.arrayValue)
        XCTAssertEqual(warnings.count, 1)
        let warning = try XCTUnwrap(warnings.first?.stringValue)
        for phrase in ["far from the original", "align: true", "ratio 0.25", "layers [10, 22)", "taylor"] {
            XCTAssertTrue(warning.contains(phrase), "'\(phrase)' in \(warning)")
        }
        // The warning also went out as a log message and a progress report.
        XCTAssertTrue(d.received.contains { $0["method"] == .string("window/logMessage") && $0["params"]?["type"] == .int(2) })
        XCTAssertTrue(d.received.contains { $0["method"] == .string("$/progress") && $0["params"]?["value"]?["warning"] != nil })
        d.closeInput()
        _ = d.exitCode()
    }

    /// A no-op carrier (ratio 0: the original's weights) is at distance 0: no warning, and the run goes on.
    func testANoOpCarrierIsCloseAndNotWarned() throws {
        let path = try smolLM2()
        let work = try temporaryDirectory()
        let data = try pythonText(work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "loram/run", #"""
            {"path":"\#(path)","outDir":"\#(work.appendingPathComponent("out").path)","stopIfFar":true,
             "prune":{"method":"l2","ratio":0.0,"layers":[4,28]},
             "diagnostics":{"seqLen":32,"maxSamples":2},
             "train":{"dataset":\#(data),"seqLen":32,"microBatch":1,"steps":1,"lr":0.0005}}
            """#)
        let report = try XCTUnwrap(d.response(id: 1, timeout: 900)?["result"]?["report"], "\(d.received.last ?? .null)")
        let check = try XCTUnwrap(report["diagnostics"]?["afterPrune"])
        XCTAssertEqual(check["verdict"]?["level"], .string("close"))
        XCTAssertEqual(try XCTUnwrap(check["klPerToken"]?.doubleValue), 0, accuracy: 1e-9)
        XCTAssertEqual(report["diagnostics"]?["warnings"], .array([]))
        XCTAssertEqual(report["stoppedBefore"], nil)
        XCTAssertNotNil(report["verdict"]?["effect"]?.stringValue)
        d.closeInput()
        _ = d.exitCode()
    }
}
