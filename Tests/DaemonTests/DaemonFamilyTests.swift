import Foundation
import XCTest
import RPC

/// Every family through the real process: a random Qwen2, Qwen3, Gemma 3 and Mistral model
/// (`make-model --family`, as GGUF and as a folder) runs the whole LoRAM pipeline, and the
/// recovered adapter, saved as GGUF and as PEFT, loads back on the original and gives the same
/// logits; memory/plan knows each family's presets and refuses what model/load refuses.
final class DaemonFamilyTests: XCTestCase {
    func make(_ arguments: [String]) throws {
        let (status, output) = try DaemonProcess.run(arguments)
        XCTAssertEqual(status, 0, output)
    }

    func testThePipelineRunsOnEveryFamily() throws {
        let work = try temporaryDirectory()
        let data = work.appendingPathComponent("data")
        try make(["make-dataset", "--out", data.path, "--train-bytes", "20000", "--eval-bytes", "4000"])
        let train = #"{"path":"\#(data.appendingPathComponent("train.jsonl").path)","format":"text"}"#
        let eval = #"{"path":"\#(data.appendingPathComponent("eval.jsonl").path)","format":"text"}"#
        for (family, asGGUF) in [("qwen2", true), ("qwen3", false), ("gemma3", true), ("mistral", false)] {
            let model = work.appendingPathComponent(asGGUF ? "\(family).gguf" : family), out = work.appendingPathComponent("out-\(family)")
            try make(["make-model", "--family", family, "--tied"] + (asGGUF ? ["--gguf", model.path, "--gguf-type", "F32"] : ["--out", model.path]))
            let d = try DaemonProcess()
            XCTAssertNotNil(d.initialize())
            d.request(1, "loram/run", #"""
                {"path":"\#(model.path)","dtype":"f32","outDir":"\#(out.path)",
                 "prune":{"method":"taylor","ratio":0.5,"layers":[0,2],"calibration":\#(train)},
                 "align":{"dataset":\#(train),"seqLen":32,"microBatch":2,"steps":2,"lr":0.00002,"packing":true},
                 "quantize":"nf4",
                 "train":{"dataset":\#(train),"seqLen":32,"microBatch":2,"steps":6,"lr":0.003,"packing":true},
                 "eval":{"datasets":[\#(eval)],"seqLen":32,"maxSamples":8}}
                """#)
            let result = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["result"], "\(family): \(d.received.last ?? .null)")
            let report = try XCTUnwrap(result["report"])
            let measured = try XCTUnwrap(report["memory"]?["measuredPeakBytes"]?.doubleValue)
            XCTAssertLessThanOrEqual(measured, try XCTUnwrap(report["memory"]?["plannedPeakBytes"]?.doubleValue), family)
            guard case .array(let perplexities)? = report["perplexity"], let ppl = perplexities.first else { return XCTFail("\(report)") }
            XCTAssertLessThan(try XCTUnwrap(ppl["carrierWithAdapter"]?.doubleValue), try XCTUnwrap(ppl["carrier"]?.doubleValue), family)
            // The recovered adapter from its files (GGUF for a GGUF original, PEFT otherwise) gives the pipeline's logits.
            let files = try XCTUnwrap(report["files"])
            let path = try XCTUnwrap(files[asGGUF ? "recoveredAdapterGGUF" : "recoveredAdapter"]?.stringValue, "\(family): \(files)")
            let originalId = try XCTUnwrap(result["modelId"]?.stringValue), recoveredId = try XCTUnwrap(result["adapterId"]?.stringValue)
            d.request(2, "adapter/load", #"{"modelId":"\#(originalId)","path":"\#(path)"}"#)
            let loadedId = try XCTUnwrap(d.response(id: 2)?["result"]?["adapterId"]?.stringValue, "\(family): \(d.received.last ?? .null)")
            func logits(_ id: Int, _ adapter: String) throws -> JSONValue {
                d.request(id, "model/forward", #"{"modelId":"\#(originalId)","adapterId":"\#(adapter)","ids":[1,40,41,300,17,9],"logits":"all"}"#)
                return try XCTUnwrap(d.response(id: id)?["result"]?["logits"], "\(family): \(d.received.last ?? .null)")
            }
            XCTAssertEqual(try logits(3, loadedId), try logits(4, recoveredId), family)
            // The carrier loads back as its family.
            d.request(5, "model/load", #"{"path":"\#(try XCTUnwrap(files["carrier"]?.stringValue))"}"#)
            let carrier = try XCTUnwrap(d.response(id: 5)?["result"], "\(family): \(d.received.last ?? .null)")
            XCTAssertEqual(carrier["config"]?["family"], .string(family))
            // make-model gives Gemma 3 a window of 32 (its makerFields); the others slide nowhere.
            XCTAssertEqual(carrier["config"]?["slidingWindow"], family == "gemma3" ? .int(32) : .null, family)
            d.closeInput()
            _ = d.exitCode()
        }
    }

    func testMemoryPlanKnowsEachFamilyAndRefusesWhatLoadRefuses() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let workload = #""workload":{"kind":"train","seqLen":512,"microBatch":1,"lora":{"r":8,"targets":["q_proj","v_proj"]},"baseDtype":"nf4"}"#
        for (id, preset, parameters): (Int, String, Int64) in [(1, "qwen2.5-7b", 7_615_616_512), (2, "gemma-3-27b", 27_009_002_240), (3, "qwen3-8b", 8_190_735_360)] {
            let start = Date()
            d.request(id, "memory/plan", #"{"model":{"preset":"\#(preset)"},\#(workload)}"#)
            let result = try XCTUnwrap(d.response(id: id)?["result"], "\(d.received.last ?? .null)")
            // Speed is measured in bench/results/plan-presets-2026-12-08.txt; this bound is for a hang.
            XCTAssertLessThan(Date().timeIntervalSince(start), 60, "\(preset): a hang")
            XCTAssertEqual(result["parameters"]?["original"]?.intValue, parameters, preset)
        }
        d.request(4, "memory/plan", #"{"model":{"config":{"architectures":["Phi3ForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":256}},\#(workload)}"#)
        let error = try XCTUnwrap(d.response(id: 4)?["error"], "\(d.received.last ?? .null)")
        XCTAssertEqual(error["code"]?.intValue, -31010)
        XCTAssertTrue(error["message"]?.stringValue?.contains("Phi3ForCausalLM is not supported; loramd runs LlamaForCausalLM") ?? false, "\(error)")
        d.closeInput()
        _ = d.exitCode()
    }
}
