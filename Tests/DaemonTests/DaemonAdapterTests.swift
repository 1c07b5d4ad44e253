import Foundation
import XCTest
import RPC

/// The adapter methods through the real process: the golden PEFT adapter on the golden tiny
/// model (PEFT's logits and loss), create/save/load/merge, and the errors.
final class DaemonAdapterTests: XCTestCase {
    static let golden = DaemonModelTests.golden
    static var tiny: String { golden.appendingPathComponent("tiny").path }
    static var goldenAdapter: String { golden.appendingPathComponent("tiny_lora").path }
    /// Embeddings, lm_head and final norm; per layer two norms, q/o [64, 64], k/v [32, 64], three MLP [176, 64].
    static let tinyParameters: Int = {
        let perLayer: Int = 64 * 2 + 64 * 64 * 2 + 32 * 64 * 2 + 176 * 64 * 3
        return 512 * 64 * 2 + 64 + 2 * perLayer
    }()

    /// A little-endian float32 .npy array of the golden directory, flattened.
    func npy(_ name: String) throws -> [Float] {
        let data = try Data(contentsOf: Self.golden.appendingPathComponent(name))
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        return data[(10 + headerLength)...].withUnsafeBytes { raw in
            (0..<(raw.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
    }



    func testTheGoldenAdapterGivesPEFTsLogitsAndLoss() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let loaded = try result(d, 2, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(Self.goldenAdapter)"}"#)
        let adapterId = try XCTUnwrap(loaded["adapterId"]?.stringValue)
        let parameters: Int = 2 * 8 * (128 * 2 + 96 * 2 + 240 * 3)
        XCTAssertEqual(loaded["parameters"], .int(Int64(parameters)))
        XCTAssertEqual(loaded["bytes"], .int(Int64(parameters * 4)))
        XCTAssertEqual(loaded["r"], .int(8))
        XCTAssertEqual(loaded["alpha"]?.doubleValue, 16)
        XCTAssertEqual(loaded["targets"], .array(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map { .string($0) }))
        XCTAssertEqual(loaded["modelId"], .string(modelId))

        // Every row of PEFT's logits, and the last one alone.
        let ids = try goldenInputIds()
        let golden = try npy("tiny_lora_logits.npy")
        let tolerance = 1e-5 * max(1, golden.map(abs).max()!)
        let all = floats(try result(d, 3, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        XCTAssertLessThanOrEqual(maxAbsDifference(all, golden), tolerance)
        let last = floats(try result(d, 4, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","ids":\#(ids)}"#)["logits"])
        XCTAssertLessThanOrEqual(maxAbsDifference(last, Array(golden[((ids.count - 1) * 512)...])), tolerance)
        let base = floats(try result(d, 5, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids)}"#)["logits"])
        XCTAssertGreaterThan(maxAbsDifference(base, last), 0.01, "without adapterId the base model answers")

        // The golden loss with the adapter (tiny_golden.json lora.loss_before_step).
        let dataset = try temporaryDirectory().appendingPathComponent("ids.jsonl")
        try #"{"ids":\#(ids)}"#.write(to: dataset, atomically: false, encoding: .utf8)
        let eval = try result(d, 6, "eval/perplexity", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"}}"#)
        XCTAssertEqual(try XCTUnwrap(eval["loss"]?.doubleValue), 6.479699, accuracy: 1e-5)
        XCTAssertEqual(eval["tokens"], .int(Int64(ids.count - 1)))

        // Greedy generation with the adapter: its first token is the argmax of the golden last row.
        let generated = try result(d, 7, "generate", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","ids":\#(ids),"maxTokens":3}"#)
        let lastRow = Array(golden[((ids.count - 1) * 512)...])
        guard case .array(let newIds)? = generated["ids"] else { return XCTFail("\(generated)") }
        XCTAssertEqual(newIds.first, .int(Int64(lastRow.firstIndex(of: lastRow.max()!)!)))

        // Listed, charged, and holding its model.
        let list = try result(d, 8, "model/list", "{}")
        guard case .array(let adapters)? = list["adapters"] else { return XCTFail("\(list)") }
        XCTAssertEqual(adapters.count, 1)
        XCTAssertEqual(adapters.first?["adapterId"], .string(adapterId))
        XCTAssertEqual(adapters.first?["modelId"], .string(modelId))
        XCTAssertEqual(adapters.first?["bytes"], .int(Int64(parameters * 4)))
        let modelBytes = Self.tinyParameters
        let usedBytes: Int = (modelBytes + parameters) * 4
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(Int64(usedBytes)))
        let refused = try XCTUnwrap(error(d, 9, "model/unload", #"{"modelId":"\#(modelId)"}"#))
        XCTAssertEqual(refused["code"], .int(-32602))
        XCTAssertEqual(refused["data"]?["field"], .string("modelId"))
        XCTAssertEqual(refused["data"]?["adapters"], .array([.string(adapterId)]))
        XCTAssertEqual(try result(d, 10, "adapter/unload", #"{"adapterId":"\#(adapterId)"}"#), .null)
        XCTAssertEqual(try result(d, 11, "model/unload", #"{"modelId":"\#(modelId)"}"#), .null)
        XCTAssertEqual(try result(d, 12, "model/list", "{}")["memory"]?["usedBytes"], .int(0))
        XCTAssertEqual(error(d, 13, "adapter/unload", #"{"adapterId":"\#(adapterId)"}"#)?["code"], .int(-31001))
        d.closeInput()
        _ = d.exitCode()
    }

    func testCreateSaveLoadAndMerge() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let ids = try goldenInputIds()
        let base = floats(try result(d, 2, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#)["logits"])

        // PEFT's initialisation (B = 0) leaves the logits exactly as they were.
        let fresh = try result(d, 3, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"targets":["q_proj","down_proj"],"seed":1}"#)
        let freshParameters: Int = 2 * 4 * (128 + 240)
        XCTAssertEqual(fresh["parameters"], .int(Int64(freshParameters)))
        XCTAssertEqual(fresh["dropout"]?.doubleValue, 0)
        let freshId = try XCTUnwrap(fresh["adapterId"]?.stringValue)
        XCTAssertEqual(floats(try result(d, 4, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(freshId)","ids":\#(ids),"logits":"all"}"#)["logits"]), base)

        // With B drawn too, the adapter changes the output; saved and loaded back, it gives the same logits.
        let created = try result(d, 5, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"dropout":0.05,"targets":["q_proj","v_proj","lm_head"],"seed":7,"bInitStd":0.1}"#)
        let adapterId = try XCTUnwrap(created["adapterId"]?.stringValue)
        XCTAssertEqual(created["targets"], .array([.string("q_proj"), .string("v_proj"), .string("lm_head")]))
        let applied = floats(try result(d, 6, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        XCTAssertGreaterThan(maxAbsDifference(applied, base), 0.01)
        let directory = try temporaryDirectory().appendingPathComponent("adapter")
        let saved = try result(d, 7, "adapter/save", #"{"adapterId":"\#(adapterId)","path":"\#(directory.path)"}"#)
        XCTAssertEqual(saved["files"], .array([.string(directory.appendingPathComponent("adapter_config.json").path),
                                               .string(directory.appendingPathComponent("adapter_model.safetensors").path)]))
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["base_model_name_or_path"] as? String, Self.tiny)
        XCTAssertEqual(config["lora_dropout"] as? Double, 0.05)
        let reloaded = try result(d, 8, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(directory.path)"}"#)
        XCTAssertEqual(reloaded["parameters"], created["parameters"])
        let reloadedId = try XCTUnwrap(reloaded["adapterId"]?.stringValue)
        XCTAssertEqual(floats(try result(d, 9, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(reloadedId)","ids":\#(ids),"logits":"all"}"#)["logits"]), applied)

        // Merged: a new model whose plain logits are the adapted ones; the original is unchanged.
        let merged = try result(d, 10, "adapter/merge", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)"}"#)
        let mergedId = try XCTUnwrap(merged["modelId"]?.stringValue)
        XCTAssertNotEqual(mergedId, modelId)
        let modelParameters = Self.tinyParameters
        XCTAssertEqual(merged["parameters"], .int(Int64(modelParameters)))
        XCTAssertEqual(merged["bytes"], .int(Int64(modelParameters * 4)))
        let folded = floats(try result(d, 11, "model/forward", #"{"modelId":"\#(mergedId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        XCTAssertLessThanOrEqual(maxAbsDifference(folded, applied), 1e-4)
        XCTAssertEqual(floats(try result(d, 12, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#)["logits"]), base)
        // The adapter belongs to the original model, not to the merged one.
        let wrongModel = try XCTUnwrap(error(d, 13, "model/forward", #"{"modelId":"\#(mergedId)","adapterId":"\#(adapterId)","ids":[1]}"#))
        XCTAssertEqual(wrongModel["code"], .int(-32602))
        XCTAssertEqual(wrongModel["data"]?["field"], .string("adapterId"))
        // The merged model has no adapters of its own: it unloads.
        XCTAssertEqual(try result(d, 14, "model/unload", #"{"modelId":"\#(mergedId)"}"#), .null)
        d.closeInput()
        _ = d.exitCode()
    }

    func testBadParamsAndFilesAreRefused() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let createCases: [(String, String)] = [
            (#""r":0,"alpha":8,"targets":["q_proj"]"#, "r"),
            (#""r":4,"alpha":0,"targets":["q_proj"]"#, "alpha"),
            (#""r":4,"alpha":8,"dropout":1,"targets":["q_proj"]"#, "dropout"),
            (#""r":4,"alpha":8,"dropout":-0.1,"targets":["q_proj"]"#, "dropout"),
            (#""r":4,"alpha":8,"targets":[]"#, "targets"),
            (#""r":4,"alpha":8,"targets":["q_proj","wq"]"#, "targets[1]"),
            (#""r":4,"alpha":8"#, "targets"),
            (#""r":4,"alpha":8,"targets":["q_proj"],"bInitStd":-1"#, "bInitStd"),
        ]
        for (index, (params, field)) in createCases.enumerated() {
            let failure = error(d, 10 + index, "adapter/create", #"{"modelId":"\#(modelId)",\#(params)}"#)
            XCTAssertEqual(failure?["code"], .int(-32602), params)
            XCTAssertEqual(failure?["data"]?["field"], .string(field), params)
        }
        XCTAssertEqual(error(d, 30, "adapter/create", #"{"modelId":"model-99","r":4,"alpha":8,"targets":["q_proj"]}"#)?["code"], .int(-31001))
        XCTAssertEqual(error(d, 31, "adapter/load", #"{"modelId":"\#(modelId)","path":"/no/such/adapter"}"#)?["code"], .int(-31001))
        let unknown = error(d, 32, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"adapter-99","ids":[1]}"#)
        XCTAssertEqual(unknown?["code"], .int(-31001))
        XCTAssertEqual(unknown?["data"]?["field"], .string("adapterId"))
        XCTAssertEqual(error(d, 33, "adapter/save", #"{"adapterId":"adapter-99","path":"/tmp/x"}"#)?["code"], .int(-31001))

        // The golden adapter on a model with another MLP width: ShapeMismatch naming the tensor.
        let other = golden("../layouts/bf16-sharded")
        let otherId = try XCTUnwrap(try result(d, 34, "model/load", #"{"path":"\#(other)"}"#)["modelId"]?.stringValue)
        let mismatch = try XCTUnwrap(error(d, 35, "adapter/load", #"{"modelId":"\#(otherId)","path":"\#(Self.goldenAdapter)"}"#))
        XCTAssertEqual(mismatch["code"], .int(-31011))
        XCTAssertEqual(mismatch["data"]?["tensor"], .string("base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight"))
        XCTAssertEqual(mismatch["data"]?["expected"], .array([.int(96), .int(8)]))
        XCTAssertEqual(mismatch["data"]?["found"], .array([.int(176), .int(8)]))

        // A config asking for what loramd does not compute: FormatError naming the file.
        let dora = try temporaryDirectory()
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.goldenAdapter).appendingPathComponent("adapter_config.json"))) as! [String: Any]
        config["use_dora"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: dora.appendingPathComponent("adapter_config.json"))
        try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.goldenAdapter).appendingPathComponent("adapter_model.safetensors"),
                                         to: dora.appendingPathComponent("adapter_model.safetensors"))
        let format = try XCTUnwrap(error(d, 36, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(dora.path)"}"#))
        XCTAssertEqual(format["code"], .int(-31010))
        XCTAssertEqual(format["data"]?["file"], .string("adapter_config.json"))
        XCTAssertTrue(format["data"]?["problem"]?.stringValue?.contains("DoRA") == true, "\(format)")

        // A file without GGUF's magic: the FormatError model/load gives for the same bytes.
        let text = dora.appendingPathComponent("notes.txt")
        try Data("not a model".utf8).write(to: text)
        let notGGUF = try XCTUnwrap(error(d, 38, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(text.path)"}"#))
        let asModel = try XCTUnwrap(error(d, 39, "model/load", #"{"path":"\#(text.path)"}"#))
        XCTAssertEqual(notGGUF["code"], .int(-31010), "\(notGGUF)")
        XCTAssertEqual(notGGUF["data"], asModel["data"])
        XCTAssertTrue(notGGUF["data"]?["problem"]?.stringValue?.hasPrefix("not a GGUF file") == true, "\(notGGUF)")

        // Nothing failed stays charged.
        let list = try result(d, 37, "model/list", "{}")
        XCTAssertEqual(list["adapters"], .array([]))
        d.closeInput()
        _ = d.exitCode()
    }

    func testAnAdapterOverTheBudgetIsRefusedBeforeItIsAllocated() throws {
        let d = try DaemonProcess()
        let modelBytes = 4 * Self.tinyParameters
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":\#(modelBytes + 100_000)}"#))
        let modelId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let failure = try XCTUnwrap(error(d, 2, "adapter/create", #"{"modelId":"\#(modelId)","r":64,"alpha":8,"targets":["q_proj","lm_head"]}"#))
        XCTAssertEqual(failure["code"], .int(-31020))
        XCTAssertNotNil(try result(d, 3, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"targets":["q_proj","lm_head"]}"#)["adapterId"])
        d.closeInput()
        _ = d.exitCode()
    }

    func golden(_ relative: String) -> String {
        Self.golden.appendingPathComponent(relative).standardizedFileURL.path
    }
}
