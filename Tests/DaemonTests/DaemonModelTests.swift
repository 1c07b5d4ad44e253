import Foundation
import XCTest
import RPC

/// The model methods through the real process, on the golden tiny model and on models made by
/// `loramd make-model`.
final class DaemonModelTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/golden")
    static var tiny: String { golden.appendingPathComponent("tiny").path }

    func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Self.golden.appendingPathComponent(name))) as! [String: Any]
    }

    func load(_ d: DaemonProcess, _ path: String, id: Int = 10) throws -> String {
        d.request(id, "model/load", #"{"path":"\#(path)"}"#)
        let result = try XCTUnwrap(d.response(id: id)?["result"], "\(d.received.last ?? .null)")
        return try XCTUnwrap(result["modelId"]?.stringValue)
    }

    func testLoadListTokenizeGenerateUnload() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "model/load", #"{"path":"\#(Self.tiny)"}"#)
        let loaded = try XCTUnwrap(d.response(id: 1)?["result"])
        let modelId = try XCTUnwrap(loaded["modelId"]?.stringValue)
        XCTAssertEqual(loaded["config"]?["layers"], .int(2))
        XCTAssertEqual(loaded["config"]?["kvHeads"], .int(2))
        XCTAssertEqual(loaded["config"]?["headDim"], .int(16))
        XCTAssertEqual(loaded["config"]?["tiedEmbeddings"], .bool(false))
        let parameters = 512 * 64 * 2 + 64 + 2 * (64 * 2 + 64 * 64 * 2 + 32 * 64 * 2 + 176 * 64 * 3)
        XCTAssertEqual(loaded["parameters"], .int(Int64(parameters)))
        XCTAssertEqual(loaded["bytes"], .int(Int64(parameters * 4)))

        d.request(2, "model/list")
        let list = try XCTUnwrap(d.response(id: 2)?["result"])
        guard case .array(let models)? = list["models"] else { return XCTFail() }
        XCTAssertEqual(models.first?["modelId"], .string(modelId))
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(Int64(parameters * 4)))

        // Tokenizer cases from the golden file.
        let golden = try json("tiny_golden.json")
        let prompt = golden["prompt"] as! String
        let inputIds = golden["input_ids"] as! [Int]
        d.request(3, "tokenize", #"{"modelId":"\#(modelId)","text":\#(JSONValue.string(prompt).serializedString)}"#)
        XCTAssertEqual(d.response(id: 3)?["result"]?["ids"], .array(inputIds.map { .int(Int64($0)) }))
        d.request(4, "detokenize", #"{"modelId":"\#(modelId)","ids":\#(Array(inputIds.dropFirst()))}"#)
        XCTAssertEqual(d.response(id: 4)?["result"]?["text"], .string(prompt))

        // Greedy generation, with the text streamed through progress.
        let greedy = (try json("tiny_greedy_golden.json")["cases"] as! [[String: Any]])[0]
        let expectedIds = greedy["generated_ids"] as! [Int]
        d.request(5, "generate", #"{"modelId":"\#(modelId)","ids":\#(greedy["prompt_ids"] as! [Int]),"maxTokens":20,"workDoneToken":"gen"}"#)
        let generated = try XCTUnwrap(d.response(id: 5)?["result"])
        XCTAssertEqual(generated["ids"], .array(expectedIds.map { .int(Int64($0)) }))
        XCTAssertEqual(generated["text"], .string(greedy["generated_text"] as! String))
        XCTAssertEqual(generated["finishReason"], .string("length"))
        XCTAssertEqual(generated["usage"]?["completionTokens"], .int(20))
        guard case .double(let decodeRate)? = generated["timing"]?["decodeTokensPerSecond"] else { return XCTFail("\(generated)") }
        XCTAssertGreaterThan(decodeRate, 0)
        let streamed = d.received.filter { $0["params"]?["token"] == .string("gen") }
            .compactMap { $0["params"]?["value"]?["text"]?.stringValue }.joined()
        XCTAssertEqual(streamed, greedy["generated_text"] as! String)

        d.request(6, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(inputIds),"logits":"all"}"#)
        guard case .array(let rows)? = d.response(id: 6)?["result"]?["logits"] else { return XCTFail() }
        XCTAssertEqual(rows.count, inputIds.count)

        d.request(7, "model/unload", #"{"modelId":"\#(modelId)"}"#)
        XCTAssertEqual(d.response(id: 7)?["result"], .null)
        d.request(8, "model/list")
        XCTAssertEqual(d.response(id: 8)?["result"]?["memory"]?["usedBytes"], .int(0))
        d.request(9, "generate", #"{"modelId":"\#(modelId)","prompt":"x","maxTokens":1}"#)
        XCTAssertEqual(d.response(id: 9)?["error"]?["code"], .int(-31001), "an unloaded model is NotFound")
        d.closeInput()
        _ = d.exitCode()
    }

    func testBadLoadsLeaveNothingLoaded() throws {
        let broken = try temporaryDirectory()
        for name in ["config.json", "tokenizer.json"] {
            try FileManager.default.copyItem(at: URL(fileURLWithPath: Self.tiny).appendingPathComponent(name), to: broken.appendingPathComponent(name))
        }
        let weights = try Data(contentsOf: URL(fileURLWithPath: Self.tiny).appendingPathComponent("model.safetensors"))
        try weights.prefix(weights.count / 2).write(to: broken.appendingPathComponent("model.safetensors"))

        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "model/load", #"{"path":"\#(broken.path)"}"#)
        let error = try XCTUnwrap(d.response(id: 1)?["error"])
        XCTAssertEqual(error["code"], .int(-31010))
        XCTAssertEqual(error["data"]?["file"], .string("model.safetensors"))
        XCTAssertTrue(error["data"]?["problem"]?.stringValue?.contains("ends past the end of the data") == true)
        d.request(2, "model/load", #"{"path":"/no/such/directory"}"#)
        XCTAssertEqual(d.response(id: 2)?["error"]?["code"], .int(-31001))
        d.request(3, "model/load", #"{"path":"\#(Self.tiny)","dtype":"int3"}"#)
        XCTAssertEqual(d.response(id: 3)?["error"]?["data"]?["field"], .string("dtype"))
        d.request(4, "model/list")
        let list = try XCTUnwrap(d.response(id: 4)?["result"])
        XCTAssertEqual(list["models"], .array([]))
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(0))
        d.closeInput()
        _ = d.exitCode()
    }

    func testOverBudgetLoadIsRefusedBeforeAnythingIsRead() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":100000}"#))
        d.request(1, "model/load", #"{"path":"\#(Self.tiny)"}"#)
        let error = try XCTUnwrap(d.response(id: 1)?["error"])
        XCTAssertEqual(error["code"], .int(-31020))
        XCTAssertEqual(error["data"]?["capBytes"], .int(100000))
        XCTAssertGreaterThan(error["data"]?["needBytes"]?.intValue ?? 0, 100000)
        d.request(2, "model/list")
        XCTAssertEqual(d.response(id: 2)?["result"]?["models"], .array([]))
        XCTAssertEqual(error["data"]?["suggestion"], .null, "not even bf16 fits 100 kB")
        d.closeInput()
        _ = d.exitCode()
    }

    func testOverBudgetLoadSuggestsAStorageThatFits() throws {
        // The tiny model has 158,016 parameters: ~632 kB in f32, ~317 kB in bf16 (norms stay fp32).
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":400000}"#))
        d.request(1, "model/load", #"{"path":"\#(Self.tiny)"}"#)
        let error = try XCTUnwrap(d.response(id: 1)?["error"])
        XCTAssertEqual(error["code"], .int(-31020))
        XCTAssertEqual(error["data"]?["suggestion"]?["changes"]?["dtype"], .string("bf16"))
        d.request(2, "model/load", #"{"path":"\#(Self.tiny)","dtype":"bf16"}"#)
        XCTAssertNotNil(d.response(id: 2)?["result"]?["modelId"], "the suggestion, applied, fits")
        d.closeInput()
        _ = d.exitCode()
    }

    func testGenerateParamsAreValidated() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try load(d, Self.tiny)
        let cases: [(String, String)] = [
            (#"{"modelId":"\#(modelId)","prompt":"a","maxTokens":0}"#, "maxTokens"),
            (#"{"modelId":"\#(modelId)","prompt":"a","maxTokens":4,"temperature":-1}"#, "temperature"),
            (#"{"modelId":"\#(modelId)","prompt":"a","maxTokens":4,"topP":0}"#, "topP"),
            (#"{"modelId":"\#(modelId)","prompt":"a","maxTokens":4,"topK":0}"#, "topK"),
            (#"{"modelId":"\#(modelId)","maxTokens":4}"#, "prompt"),
            (#"{"modelId":"\#(modelId)","ids":[1,512],"maxTokens":4}"#, "ids[1]"),
            (#"{"modelId":"\#(modelId)","prompt":"a","ids":[1],"maxTokens":4}"#, "ids"),
            (#"{"modelId":"\#(modelId)","prompt":"a","maxTokens":"4"}"#, "maxTokens"),
        ]
        for (i, (params, field)) in cases.enumerated() {
            d.request(100 + i, "generate", params)
            let error = d.response(id: 100 + i)?["error"]
            XCTAssertEqual(error?["code"], .int(-32602), params)
            XCTAssertEqual(error?["data"]?["field"], .string(field), params)
        }
        d.request(200, "generate", #"{"modelId":"nope","prompt":"a","maxTokens":4}"#)
        XCTAssertEqual(d.response(id: 200)?["error"]?["code"], .int(-31001))
        d.closeInput()
        _ = d.exitCode()
    }

    func testGenerationIsCancelledBetweenTokensWithThePartialOutput() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try load(d, Self.tiny)
        d.request(1, "generate", #"{"modelId":"\#(modelId)","prompt":"hello","maxTokens":1000000,"temperature":1,"seed":3,"workDoneToken":"g"}"#)
        XCTAssertTrue(d.wait { $0.contains { $0["params"]?["value"]?["text"] != nil } }, "some text streamed first")
        d.notify("$/cancelRequest", #"{"id":1}"#)
        let error = try XCTUnwrap(d.response(id: 1)?["error"])
        XCTAssertEqual(error["code"], .int(-32800))
        XCTAssertEqual(error["data"]?["partial"]?["finishReason"], .string("cancelled"))
        guard case .array(let ids)? = error["data"]?["partial"]?["ids"] else { return XCTFail("\(error)") }
        XCTAssertFalse(ids.isEmpty)
        d.closeInput()
        _ = d.exitCode()
    }

    func testSeededSamplingIsReproducibleAcrossRequests() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try load(d, Self.tiny)
        let params = #"{"modelId":"\#(modelId)","prompt":"The quick brown fox","maxTokens":24,"temperature":0.9,"topK":50,"topP":0.95,"seed":11}"#
        d.request(1, "generate", params)
        d.request(2, "generate", params)
        let first = d.response(id: 1)?["result"]?["ids"], second = d.response(id: 2)?["result"]?["ids"]
        XCTAssertNotNil(first)
        XCTAssertEqual(first, second)
        d.closeInput()
        _ = d.exitCode()
    }

    func testMakeModelSaveReloadAndPerplexity() throws {
        let directory = try temporaryDirectory()
        let make = try DaemonProcess.run(["make-model", "--preset", "tiny", "--out", directory.path, "--seed", "5"])
        XCTAssertEqual(make.status, 0, make.output)
        for name in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path), name)
        }
        let dataset = directory.appendingPathComponent("eval.jsonl")
        try Data((0..<8).map { #"{"text":"Sample line number \#($0) of a small evaluation set."}"# }.joined(separator: "\n").utf8).write(to: dataset)

        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try load(d, directory.path)
        d.request(1, "eval/perplexity", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"text"}}"#)
        let eval = try XCTUnwrap(d.response(id: 1)?["result"], "\(d.received.last ?? .null)")
        let perplexity = try XCTUnwrap(eval["perplexity"]?.doubleValue)
        // A random model is close to uniform over its 512 tokens.
        XCTAssertGreaterThan(perplexity, 100)
        XCTAssertLessThan(perplexity, 2000)

        // Saved in bf16 and loaded back: it still works and is half the size.
        let saved = try temporaryDirectory()
        d.request(2, "model/save", #"{"modelId":"\#(modelId)","path":"\#(saved.path)","dtype":"bf16"}"#)
        XCTAssertNotNil(d.response(id: 2)?["result"]?["files"])
        let reloaded = try load(d, saved.path, id: 3)
        d.request(4, "generate", #"{"modelId":"\#(reloaded)","prompt":"Once upon","maxTokens":8}"#)
        XCTAssertEqual(d.response(id: 4)?["result"]?["usage"]?["completionTokens"], .int(8))

        // A dataset with a bad line is refused with its line number.
        try Data("{\"text\":\"ok\"}\n{\"text\": 5}\n".utf8).write(to: dataset)
        d.request(5, "eval/perplexity", #"{"modelId":"\#(modelId)","dataset":{"path":"\#(dataset.path)","format":"text"}}"#)
        let error = try XCTUnwrap(d.response(id: 5)?["error"])
        XCTAssertEqual(error["code"], .int(-31010))
        XCTAssertTrue(error["data"]?["problem"]?.stringValue?.hasPrefix("line 2:") == true, "\(error)")
        d.closeInput()
        _ = d.exitCode()
    }
}
