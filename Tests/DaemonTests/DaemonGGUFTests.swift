import Foundation
import XCTest
import RPC
import Runtime

/// GGUF through the process: a model saved as GGUF loads back to the same logits, tokens and
/// generation; its shapes plan like its folder's; a LoRA adapter saves in llama.cpp's layout; a
/// broken file is a FormatError that leaves nothing loaded.
final class DaemonGGUFTests: XCTestCase {
    /// The golden tiny model, saved as GGUF F32 by the daemon, loaded back from the file.
    func goldenAsGGUF(_ d: DaemonProcess) throws -> (folderId: String, ggufId: String, file: URL) {
        let file = try temporaryDirectory().appendingPathComponent("tiny.gguf")
        let folderId = try XCTUnwrap(try result(d, 90, "model/load", #"{"path":"\#(DaemonModelTests.tiny)"}"#)["modelId"]?.stringValue)
        let saved = try result(d, 91, "model/save", #"{"modelId":"\#(folderId)","path":"\#(file.path)","format":"gguf","ggufType":"F32"}"#)
        XCTAssertEqual(saved["files"], .array([.string(file.path)]))
        XCTAssertEqual(saved["warnings"], .array([]), "the byte-level tokenizer has a GGUF form")
        let loaded = try result(d, 92, "model/load", #"{"path":"\#(file.path)","dtype":"f32"}"#)
        XCTAssertEqual(loaded["format"], .string("gguf"))
        XCTAssertEqual(loaded["config"]?["kvHeads"], .int(2))
        XCTAssertEqual(loaded["config"]?["headDim"], .int(16))
        return (folderId, try XCTUnwrap(loaded["modelId"]?.stringValue), file)
    }

    func testGoldenModelThroughGGUFKeepsLogitsTokensAndGeneration() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let (folderId, modelId, _) = try goldenAsGGUF(d)
        let ids = try goldenInputIds()
        let fromGGUF = floats(try result(d, 1, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        let fromFolder = floats(try result(d, 4, "model/forward", #"{"modelId":"\#(folderId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        XCTAssertEqual(fromGGUF.count, ids.count * 512)
        XCTAssertEqual(fromGGUF, fromFolder, "the same fp32 weights give the same logits")

        let prompt = (try JSONSerialization.jsonObject(with: Data(contentsOf: DaemonModelTests.golden.appendingPathComponent("tiny_golden.json"))) as! [String: Any])["prompt"] as! String
        XCTAssertEqual(try result(d, 2, "tokenize", #"{"modelId":"\#(modelId)","text":\#(JSONValue.string(prompt).serializedString)}"#)["ids"],
                       .array(ids.map { .int(Int64($0)) }))
        let greedy = (try JSONSerialization.jsonObject(with: Data(contentsOf: DaemonModelTests.golden.appendingPathComponent("tiny_greedy_golden.json"))) as! [String: Any])["cases"] as! [[String: Any]]
        let generated = try result(d, 3, "generate", #"{"modelId":"\#(modelId)","ids":\#(greedy[0]["prompt_ids"] as! [Int]),"maxTokens":20}"#)
        XCTAssertEqual(generated["ids"], .array((greedy[0]["generated_ids"] as! [Int]).map { .int(Int64($0)) }))
        XCTAssertEqual(generated["text"], .string(greedy[0]["generated_text"] as! String))
    }

    /// A GGUF's shapes plan exactly like its folder's, from the header alone.
    func testPlanReadsAGGUFHeader() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let (_, _, file) = try goldenAsGGUF(d)
        let workload = #"{"kind":"train","seqLen":64,"microBatch":2,"lora":{"r":8}}"#
        let fromFile = try result(d, 1, "memory/plan", #"{"model":{"path":"\#(file.path)"},"workload":\#(workload)}"#)
        let fromFolder = try result(d, 2, "memory/plan", #"{"model":{"path":"\#(DaemonModelTests.tiny)"},"workload":\#(workload)}"#)
        XCTAssertEqual(fromFile["peakBytes"], fromFolder["peakBytes"])
        XCTAssertNotNil(fromFile["peakBytes"]?.intValue)
        let cli = try DaemonProcess.run(["plan", "--config", file.path, "--seq", "64", "--micro-batch", "2", "--json"])
        XCTAssertEqual(cli.status, 0, cli.output)
    }

    /// adapter/save {format: gguf}: llama.cpp's names, GGUF dimensions [in, r] and [r, out], alpha,
    /// and B's q/k rows in the base GGUF's rotary order.
    func testAdapterSavesInLlamaCppLayout() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let (_, modelId, _) = try goldenAsGGUF(d)
        let adapterId = try XCTUnwrap(try result(d, 1, "adapter/create", #"{"modelId":"\#(modelId)","r":4,"alpha":8,"targets":["q_proj","k_proj","down_proj"],"seed":3,"bInitStd":0.1}"#)["adapterId"]?.stringValue)
        let directory = try temporaryDirectory()
        let file = directory.appendingPathComponent("a.gguf")
        XCTAssertEqual(try result(d, 2, "adapter/save", #"{"adapterId":"\#(adapterId)","path":"\#(file.path)","format":"gguf"}"#)["files"], .array([.string(file.path)]))
        _ = try result(d, 3, "adapter/save", #"{"adapterId":"\#(adapterId)","path":"\#(directory.appendingPathComponent("peft").path)"}"#)

        let gguf = try GGUFFile(url: file)
        XCTAssertEqual(gguf.metadata["general.type"]?.stringValue, "adapter")
        XCTAssertEqual(gguf.metadata["adapter.type"]?.stringValue, "lora")
        XCTAssertEqual(gguf.metadata["adapter.lora.alpha"]?.doubleValue, 8)
        XCTAssertEqual(gguf.metadata["general.architecture"]?.stringValue, "llama")
        XCTAssertEqual(gguf.tensorNames.count, 2 * 3 * 2)
        XCTAssertEqual(gguf.tensors["blk.0.attn_q.weight.lora_a"]?.dimensions, [64, 4])
        XCTAssertEqual(gguf.tensors["blk.0.attn_q.weight.lora_b"]?.dimensions, [4, 64])
        XCTAssertEqual(gguf.tensors["blk.1.ffn_down.weight.lora_a"]?.dimensions, [176, 4])
        XCTAssertEqual(gguf.tensors["blk.1.attn_k.weight.lora_b"]?.dimensions, [4, 32])

        // Against the PEFT file of the same adapter: A as is, B's k rows permuted.
        let peft = try SafetensorsFile(url: directory.appendingPathComponent("peft/adapter_model.safetensors"))
        func peftValues(_ name: String) throws -> [Float] {
            let info = try XCTUnwrap(peft.tensors[name])
            let bytes = peft.bytes(of: info)
            return (0..<(bytes.count / 4)).map { bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
        }
        func ggufValues(_ name: String) throws -> [Float] {
            let info = try XCTUnwrap(gguf.tensors[name])
            var out = [Float](repeating: 0, count: info.elementCount)
            try out.withUnsafeMutableBufferPointer { try gguf.dequantize(info, elements: 0..<info.elementCount, into: $0.baseAddress!) }
            return out
        }
        let prefix = "base_model.model.model.layers.1.self_attn.k_proj"
        XCTAssertEqual(try ggufValues("blk.1.attn_k.weight.lora_a"), try peftValues(prefix + ".lora_A.weight"))
        let b = try peftValues(prefix + ".lora_B.weight"), stored = try ggufValues("blk.1.attn_k.weight.lora_b")
        XCTAssertNotEqual(b, stored, "k's B rows are permuted")
        for g in 0..<32 {
            let hf = GGUFRotaryOrder.hfRow(ofGGUFRow: g, headDim: 16)
            XCTAssertEqual(Array(stored[g * 4..<(g + 1) * 4]), Array(b[hf * 4..<(hf + 1) * 4]))
        }
        XCTAssertEqual(try ggufValues("blk.1.ffn_down.weight.lora_b"), try peftValues("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"))
        // adapter/load reads it back: the same logits as the adapter it was saved from.
        let back = try result(d, 5, "adapter/load", #"{"modelId":"\#(modelId)","path":"\#(file.path)"}"#)
        XCTAssertEqual(back["r"], .int(4))
        let backId = try XCTUnwrap(back["adapterId"]?.stringValue)
        let ids = try goldenInputIds()
        let original = floats(try result(d, 6, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(adapterId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        let reloaded = floats(try result(d, 7, "model/forward", #"{"modelId":"\#(modelId)","adapterId":"\#(backId)","ids":\#(ids),"logits":"all"}"#)["logits"])
        XCTAssertEqual(original, reloaded)
        // Onto a model of other shapes it is a ShapeMismatch.
        let other = directory.appendingPathComponent("small")
        XCTAssertEqual(try DaemonProcess.run(["make-model", "--preset", "tiny", "--out", other.path]).status, 0)
        let pruned = try XCTUnwrap(try result(d, 8, "model/prune", #"{"modelId":"\#(try XCTUnwrap(try result(d, 9, "model/load", #"{"path":"\#(other.path)"}"#)["modelId"]?.stringValue))","method":"l2","ratio":0.5,"layers":[0,2]}"#)["modelId"]?.stringValue)
        XCTAssertEqual(error(d, 10, "adapter/load", #"{"modelId":"\#(pruned)","path":"\#(file.path)"}"#)?["code"]?.intValue, -31011)
        let bad = error(d, 4, "adapter/save", #"{"adapterId":"\#(adapterId)","path":"\#(file.path)","format":"onnx"}"#)
        XCTAssertEqual(bad?["code"]?.intValue, -32602)
    }

    /// Broken files: each a FormatError naming the file, nothing loaded, nothing charged, daemon alive.
    func testBrokenGGUFIsAFormatErrorAndLeavesNothingLoaded() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let directory = try temporaryDirectory()
        let good = directory.appendingPathComponent("good.gguf")
        let made = try DaemonProcess.run(["make-model", "--gguf", good.path, "--gguf-type", "Q8_0"])
        XCTAssertEqual(made.status, 0, made.output)
        let bytes = try Data(contentsOf: good)
        var cases: [(String, Data)] = [
            ("truncated-header", bytes.prefix(20)), ("truncated-metadata", bytes.prefix(2000)),
            ("truncated-data", bytes.prefix(bytes.count - 100)), ("bad-magic", Data("GGUX".utf8) + bytes.dropFirst(4)),
            ("empty", Data()),
        ]
        var version = bytes
        version[4] = 1
        cases.append(("version-1", version))
        var kvCount = bytes
        kvCount.replaceSubrange(16..<24, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        cases.append(("absurd-kv-count", kvCount))
        var tensorCount = bytes
        tensorCount.replaceSubrange(8..<16, with: [0, 0, 0, 0, 1, 0, 0, 0])
        cases.append(("tensor-count-past-end", tensorCount))
        // Cut anywhere: inside the header, the metadata, the tensor infos or the data.
        for k in 1...16 { cases.append(("cut-\(k)", bytes.prefix(bytes.count * k / 17))) }
        // A metadata key renamed so the architecture is missing, and another architecture.
        if let range = bytes.range(of: Data("general.architecture".utf8)) {
            var renamed = bytes
            renamed.replaceSubrange(range, with: Data("general.architectureX".utf8).prefix(range.count - 1) + Data("Y".utf8))
            cases.append(("no-architecture", renamed))
        }
        if let range = bytes.range(of: Data("llama".utf8)) {
            var other = bytes
            other.replaceSubrange(range, with: Data("gemma".utf8))
            cases.append(("other-architecture", other))
        }
        XCTAssertGreaterThanOrEqual(cases.count, 25)
        for (index, (name, data)) in cases.enumerated() {
            let url = directory.appendingPathComponent("\(name).gguf")
            try data.write(to: url)
            let failure = error(d, 100 + index, "model/load", #"{"path":"\#(url.path)"}"#)
            XCTAssertEqual(failure?["code"]?.intValue, -31010, "\(name): \(String(describing: failure))")
            XCTAssertEqual(failure?["data"]?["file"]?.stringValue, url.lastPathComponent, name)
        }
        // A FIFO in place of the file is refused at once rather than read.
        let fifo = directory.appendingPathComponent("fifo.gguf")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        XCTAssertEqual(error(d, 40, "model/load", #"{"path":"\#(fifo.path)"}"#)?["code"]?.intValue, -31010)
        let list = try result(d, 41, "model/list", "{}")
        XCTAssertEqual(list["models"], .array([]))
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(0))
        XCTAssertNotNil(try result(d, 42, "model/load", #"{"path":"\#(good.path)"}"#)["modelId"])
        guard case .array(let models)? = try result(d, 43, "model/list", "{}")["models"] else { return XCTFail("model/list") }
        XCTAssertEqual(models.first?["format"], .string("gguf"))
        XCTAssertEqual(models.first?["path"], .string(good.path))
    }
}

/// A FIFO in place of any file the daemon reads is refused at once (opening it for reading would
/// wait for a writer forever): weights, config, tokenizer, shard index, dataset.
final class DaemonNonRegularFileTests: XCTestCase {
    func testAFIFOInPlaceOfAnyModelFileIsAFormatErrorNotAHang() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        var id = 0
        for name in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"] {
            let folder = try temporaryDirectory().appendingPathComponent("m")
            try FileManager.default.copyItem(at: URL(fileURLWithPath: DaemonModelTests.tiny), to: folder)
            try FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            XCTAssertEqual(mkfifo(folder.appendingPathComponent(name).path, 0o600), 0)
            id += 1
            let started = Date()
            let failure = error(d, id, "model/load", #"{"path":"\#(folder.path)"}"#)
            XCTAssertEqual(failure?["code"]?.intValue, -31010, "\(name): \(String(describing: failure))")
            XCTAssertEqual(failure?["data"]?["file"]?.stringValue, name)
            XCTAssertLessThan(Date().timeIntervalSince(started), 60, "a FIFO is not opened (opening one blocks for ever)")
        }
        // Optional companions (generation settings, a chat template) that are FIFOs are skipped, not read.
        for name in ["generation_config.json", "chat_template.jinja"] {
            let folder = try temporaryDirectory().appendingPathComponent("m")
            try FileManager.default.copyItem(at: URL(fileURLWithPath: DaemonModelTests.tiny), to: folder)
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            XCTAssertEqual(mkfifo(folder.appendingPathComponent(name).path, 0o600), 0)
            id += 1
            let started = Date()
            let loaded = try result(d, id, "model/load", #"{"path":"\#(folder.path)"}"#)
            XCTAssertLessThan(Date().timeIntervalSince(started), 60, name)
            _ = try result(d, 50 + id, "model/unload", #"{"modelId":"\#(try XCTUnwrap(loaded["modelId"]?.stringValue))"}"#)
        }
        // A dataset that is a FIFO.
        let model = try XCTUnwrap(try result(d, 20, "model/load", #"{"path":"\#(DaemonModelTests.tiny)"}"#)["modelId"]?.stringValue)
        let fifo = try temporaryDirectory().appendingPathComponent("data.jsonl")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let failure = error(d, 21, "eval/perplexity", #"{"modelId":"\#(model)","dataset":{"path":"\#(fifo.path)","format":"text"}}"#)
        XCTAssertEqual(failure?["code"]?.intValue, -31010, "\(String(describing: failure))")
        XCTAssertEqual(try result(d, 22, "model/list", "{}")["models"].map { if case .array(let m) = $0 { return m.count } else { return -1 } }, 1)
    }
}
