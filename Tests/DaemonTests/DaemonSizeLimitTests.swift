import Foundation
import XCTest
import RPC

/// Sizes past what can be counted, over RPC: each request that used to kill the daemon (an
/// overflow trap in planning, an allocation abort from a config's numbers) answers a contract error
/// naming the field, nothing is charged, and the daemon answers the next request.
final class DaemonSizeLimitTests: XCTestCase {
    static let huge = "4611686018427387904"  // 2^62
    static let invalidParams = JSONValue.int(-32602), formatError = JSONValue.int(-31010), overBudget = JSONValue.int(-31020)

    func expect(_ d: DaemonProcess, _ id: Int, _ method: String, _ params: String, code: JSONValue, field: String? = nil,
                mentioning text: String? = nil, line: UInt = #line) {
        let error = self.error(d, id, method, params)
        XCTAssertEqual(error?["code"], code, "\(params): \(error ?? .null)", line: line)
        if let field { XCTAssertEqual(error?["data"]?["field"], .string(field), "\(params)", line: line) }
        if let text { XCTAssertTrue(error?["message"]?.stringValue?.contains(text) == true, "\(error ?? .null) should mention \(text)", line: line) }
        XCTAssertTrue(d.process.isRunning, "the daemon died on \(method) \(params)", line: line)
    }

    func testPlansOfAbsurdSizesAreRefusedByField() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let huge = Self.huge
        let seventy = #""model":{"preset":"llama-3.1-70b"}"#
        let rows: [(String, String)] = [
            // The issue's moderate combination: each setting real, the attention scores together past 2^62 bytes.
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":1000000,"microBatch":1000,"lora":{"r":8}}}"#, "workload"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":1000000,"microBatch":1000,"lora":{"r":8}},"search":true}"#, "workload"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":\#(huge)}}"#, "workload.seqLen"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":8,"microBatch":\#(huge)}}"#, "workload.microBatch"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":8,"lora":{"r":\#(huge)}}}"#, "workload.lora.r"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":8,"gradAccum":\#(huge)}}"#, "workload.gradAccum"),
            (#"{\#(seventy),"workload":{"kind":"generate","seqLen":8,"newTokens":\#(huge)}}"#, "workload.newTokens"),
            (#"{"model":{"preset":"llama-2-13b"},"workload":{"kind":"generate","seqLen":60000000,"microBatch":65536}}"#, "workload"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":8,"lora":{"r":8},"prune":{"method":"taylor","ratio":0.5,"calibrationSeqLen":\#(huge)}}}"#,
             "workload.prune.calibrationSeqLen"),
            (#"{\#(seventy),"workload":{"kind":"train","seqLen":8,"lora":{"r":8},"prune":{"method":"taylor","ratio":0.5,"calibrationSeqLen":60000000}}}"#,
             "workload"),
        ]
        for (i, (params, field)) in rows.enumerated() {
            expect(d, 10 + i, "memory/plan", params, code: Self.invalidParams, field: field)
        }
        // Shapes from a config (inline or on disk) past the limits are FormatErrors naming the field.
        let config = #""hidden_size":4096,"intermediate_size":11008,"num_attention_heads":32,"vocab_size":32000"#
        let work = try temporaryDirectory()
        let onDisk = work.appendingPathComponent("config.json")
        try Data(#"{\#(config),"num_hidden_layers":1e15}"#.utf8).write(to: onDisk)
        let workload = #""workload":{"kind":"train","seqLen":8}"#
        for (i, (model, field)) in [(#"{"config":{\#(config),"num_hidden_layers":1e15}}"#, "num_hidden_layers"),
                                    (#"{"config":{\#(config),"num_hidden_layers":32,"num_attention_heads":1e15,"num_key_value_heads":1,"head_dim":128}}"#, "num_attention_heads"),
                                    (#"{"config":{\#(config),"num_hidden_layers":32,"vocab_size":4611686018427387904}}"#, "vocab_size"),
                                    (#"{"path":"\#(onDisk.path)"}"#, "num_hidden_layers")].enumerated() {
            expect(d, 30 + i, "memory/plan", #"{"model":\#(model),\#(workload)}"#, code: Self.formatError, mentioning: field)
        }
        // And the daemon plans the next request as before.
        let plan = try result(d, 40, "memory/plan", #"{\#(seventy),"workload":{"kind":"train","seqLen":512,"lora":{"r":8},"baseDtype":"nf4"}}"#)
        XCTAssertGreaterThan(plan["peakBytes"]?.intValue ?? 0, 35_000_000_000)
        d.closeInput()
        _ = d.exitCode()
    }

    func testTrainingAndTaylorPruningOfAbsurdSizesAreRefused() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("tokens.jsonl")
        let lines = (0..<10).map { i in #"{"ids":\#([1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 })}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: dataset)
        let modelId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(DaemonModelTests.tiny)"}"#)["modelId"]?.stringValue)
        let modelBytes = try XCTUnwrap(d.response(id: 1)?["result"]?["bytes"]?.intValue)
        let data = #""dataset":{"path":"\#(dataset.path)","format":"tokens"}"#
        let huge = Self.huge
        let rows: [(String, String)] = [
            (#""seqLen":\#(huge),"microBatch":1,"packing":true"#, "seqLen"),
            (#""seqLen":\#(huge),"microBatch":1"#, "seqLen"),
            (#""seqLen":60000000,"microBatch":60000,"packing":true"#, "seqLen"),  // each within its limit, together not
            (#""seqLen":16,"microBatch":\#(huge)"#, "microBatch"),
            (#""seqLen":16,"microBatch":1,"gradAccum":\#(huge)"#, "gradAccum"),
            (#""seqLen":60000000,"microBatch":60000,"packing":true,"checkpointing":"auto""#, "seqLen"),
        ]
        for (i, (settings, field)) in rows.enumerated() {
            expect(d, 10 + i, "train/create", #"{"modelId":"\#(modelId)",\#(data),\#(settings),"steps":1,"lr":0.01}"#,
                   code: Self.invalidParams, field: field)
        }
        let calibration = #""calibration":{"path":"\#(dataset.path)","format":"tokens"}"#
        expect(d, 20, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.3,\#(calibration),"seqLen":\#(huge)}"#,
               code: Self.invalidParams, field: "seqLen")
        expect(d, 21, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.3,\#(calibration),"seqLen":1000000000000}"#,
               code: Self.invalidParams, field: "seqLen")
        // Within the limits and countable, but far past the budget: OverBudget, as any plan that does not fit.
        expect(d, 22, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.3,\#(calibration),"seqLen":60000000}"#,
               code: Self.overBudget)
        // Nothing was charged or created, and the daemon trains and prunes as before.
        let list = try result(d, 30, "model/list", "{}")
        XCTAssertEqual(list["memory"]?["usedBytes"]?.intValue, modelBytes)
        XCTAssertEqual(list["jobs"], .array([]))
        let jobId = try XCTUnwrap(try result(d, 31, "train/create", #"{"modelId":"\#(modelId)",\#(data),"seqLen":16,"microBatch":2,"steps":1,"lr":0.01}"#)["jobId"]?.stringValue)
        XCTAssertNotNil(try result(d, 32, "model/prune", #"{"modelId":"\#(modelId)","method":"taylor","ratio":0.3,\#(calibration),"seqLen":16}"#)["modelId"])
        // A state.json's sizes are a file's: past the limits, FormatError naming the setting (a seqLen
        // of 2^40 overflowed the resumed job's plan).
        let saved = work.appendingPathComponent("saved")
        _ = try result(d, 33, "train/save", #"{"jobId":"\#(jobId)","path":"\#(saved.path)"}"#)
        let stateURL = saved.appendingPathComponent("state.json")
        let state = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: stateURL)) as? [String: Any])
        for (i, (key, value)) in [("seqLen", 1 << 40), ("microBatch", 1 << 40), ("gradAccum", 1 << 62)].enumerated() {
            var edited = state, settings = try XCTUnwrap(state["settings"] as? [String: Any])
            settings[key] = value
            edited["settings"] = settings
            try JSONSerialization.data(withJSONObject: edited).write(to: stateURL)
            expect(d, 40 + i, "train/resume", #"{"path":"\#(saved.path)","modelId":"\#(modelId)"}"#, code: Self.formatError,
                   mentioning: "settings.\(key) is \(value), past loramd's limit")
        }
        d.closeInput()
        _ = d.exitCode()
    }

    /// A config.json whose layer count would have sized a list of 1e11 layers before any weight
    /// was looked at: FormatError naming the field, then the daemon loads a real model.
    func testModelLoadOfAnEnormousConfigIsAFormatError() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let directory = try temporaryDirectory()
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(at: URL(fileURLWithPath: DaemonModelTests.tiny).appendingPathComponent(name),
                                             to: directory.appendingPathComponent(name))
        }
        let url = directory.appendingPathComponent("config.json")
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        for (i, (key, value)) in [("num_hidden_layers", 1e11), ("vocab_size", 1e11), ("intermediate_size", 9e11)].enumerated() {
            var broken = config
            broken[key] = value
            try JSONSerialization.data(withJSONObject: broken).write(to: url)
            expect(d, 10 + i, "model/load", #"{"path":"\#(directory.path)"}"#, code: Self.formatError, mentioning: key)
            XCTAssertEqual(d.response(id: 10 + i)?["error"]?["data"]?["file"], .string("config.json"))
        }
        // Within the limits but wider than the weights: refused from the headers, before anything is charged.
        for (i, (key, value, text)) in [("num_hidden_layers", 4000, "missing tensor model.layers.2.input_layernorm.weight"),
                                        ("vocab_size", 1 << 24, "model.embed_tokens.weight has shape [512, 64], the config implies [16777216, 64]")].enumerated() {
            var wide = config
            wide[key] = value
            try JSONSerialization.data(withJSONObject: wide).write(to: url)
            expect(d, 15 + i, "model/load", #"{"path":"\#(directory.path)"}"#, code: Self.formatError, mentioning: text)
            XCTAssertEqual(d.response(id: 15 + i)?["error"]?["data"]?["file"], .string("model.safetensors"))
        }
        XCTAssertEqual(try result(d, 19, "model/list", "{}")["memory"]?["peakBytes"]?.intValue, 0, "nothing was ever charged")
        config["num_hidden_layers"] = 2
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        XCTAssertNotNil(try result(d, 20, "model/load", #"{"path":"\#(directory.path)"}"#)["modelId"])
        d.closeInput()
        _ = d.exitCode()
    }

    /// loram/run passes its stages' sizes to the same checks: the field is the stage's.
    func testThePipelineRefusesAbsurdSizesByStage() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let work = try temporaryDirectory()
        let dataset = work.appendingPathComponent("tokens.jsonl")
        try Data((0..<4).map { i in #"{"ids":[1,\#(3 + i),\#(5 + i),\#(7 + i)]}"# }.joined(separator: "\n").utf8).write(to: dataset)
        let data = #"{"path":"\#(dataset.path)","format":"tokens"}"#
        d.request(1, "loram/run", #"{"path":"\#(DaemonModelTests.tiny)","outDir":"\#(work.path)","prune":{"method":"taylor","ratio":0.3,"calibration":\#(data),"seqLen":\#(Self.huge)},"train":{"dataset":\#(data),"steps":1,"lr":0.01}}"#)
        let error = try XCTUnwrap(d.response(id: 1, timeout: DaemonProcess.hang)?["error"])
        XCTAssertEqual(error["code"], Self.invalidParams)
        XCTAssertNil(error["data"]?["stage"], "refused by the decode, before any stage runs")
        XCTAssertEqual(error["data"]?["field"], .string("prune.seqLen"))
        XCTAssertEqual(try result(d, 2, "model/list", "{}")["memory"]?["usedBytes"], .int(0), "everything the pipeline made is unloaded")
        d.closeInput()
        _ = d.exitCode()
    }

    /// `loramd plan` prints the refusal and exits 1 (it trapped on the issue's 70B combination).
    func testThePlanCommandRefusesAbsurdSizes() throws {
        for (arguments, status, text) in [(["--preset", "llama-3.1-70b", "--seq", "1000000", "--micro-batch", "1000"], Int32(1), "too large to count"),
                                          (["--preset", "llama-2-7b", "--seq", Self.huge], 1, "seqLen is 4611686018427387904, past loramd's limit"),
                                          (["--preset", "llama-2-7b", "--lora-r", Self.huge], 1, "lora.r is"),
                                          (["--preset", "llama-2-7b", "--cap", "1e300GiB"], 2, "--cap takes bytes")] {
            let run = try DaemonProcess.run(["plan"] + arguments)
            XCTAssertEqual(run.status, status, "\(arguments): \(run.output)")
            XCTAssertTrue(run.output.contains(text), "\(arguments): \(run.output)")
        }
        let work = try temporaryDirectory()
        let config = work.appendingPathComponent("config.json")
        try Data(#"{"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":1e15,"num_attention_heads":32,"vocab_size":32000}"#.utf8).write(to: config)
        let run = try DaemonProcess.run(["plan", "--config", config.path])
        XCTAssertEqual(run.status, 2, run.output)
        XCTAssertTrue(run.output.contains("config.json: num_hidden_layers is 1000000000000000, past loramd's limit of 4096"), run.output)
    }
}
