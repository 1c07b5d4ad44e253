import Foundation
import XCTest
import RPC

/// Every field of the composite methods, sent each value of the wrong type (and, for sizes, values
/// past SizeLimits), is InvalidParams naming that field, answered by the decode before any work.
/// The table names each field's kind; its bad values follow from the kind.
final class DaemonParamTypesTests: XCTestCase {
    enum Kind {
        case string, number, bool, integer, size, object, strings, integers, token
        /// Values of the wrong type (or out of range) for the kind.
        var bad: [Any] {
            let wrong: [Any] = [false, [Any](), "NaN", "x", 1.5, true, [String: Any](), 7]
            switch self {
            case .string: return wrong.filter { !($0 is String) }
            case .number: return wrong.filter { !($0 is Int || $0 is Double) || $0 is Bool }
            case .bool: return wrong.filter { !($0 is Bool) }
            case .integer: return wrong.filter { !($0 is Int) || $0 is Bool } + [-1]
            case .size: return wrong.filter { !($0 is Int) || $0 is Bool } + [0, -1, 1 << 31, Int64.max]
            case .object: return wrong.filter { !($0 is [String: Any]) }
            case .strings: return [false, "x", 1.5, [String: Any](), [1], [true]]
            case .integers: return [false, "x", 1.5, [String: Any](), ["x"], [1.5]]
            case .token: return [false, [Any](), 1.5, true, [String: Any]()]
            }
        }
    }

    /// `value` with `path` ("train.lora.r", "eval.datasets[0].path") set to `leaf`.
    func setting(_ value: Any, _ path: [String], to leaf: Any) -> Any {
        guard let first = path.first else { return leaf }
        if let open = first.firstIndex(of: "["), let index = Int(first[first.index(after: open)...].dropLast()) {
            var object = value as? [String: Any] ?? [:]
            var items = object[String(first[..<open])] as? [Any] ?? []
            items[index] = setting(items[index], Array(path.dropFirst()), to: leaf)
            object[String(first[..<open])] = items
            return object
        }
        var object = value as? [String: Any] ?? [:]
        object[first] = setting(object[first] ?? [String: Any](), Array(path.dropFirst()), to: leaf)
        return object
    }

    func check(_ d: DaemonProcess, _ method: String, base: [String: Any], fields: [(String, Kind)], id: inout Int,
               file: StaticString = #filePath, line: UInt = #line) throws {
        for (field, kind) in fields + [("workDoneToken", .token)] {
            for value in kind.bad {
                let params = setting(base, field.split(separator: ".").map(String.init), to: value)
                let text = String(decoding: try JSONSerialization.data(withJSONObject: params, options: [.fragmentsAllowed]), as: UTF8.self)
                id += 1
                let failure = error(d, id, method, text)
                XCTAssertEqual(failure?["code"], .int(-32602), "\(method) \(field) = \(value): \(failure ?? .null)", file: file, line: line)
                // An array's element is named itself ("targets[0]").
                let named = failure?["data"]?["field"]?.stringValue ?? ""
                XCTAssertTrue(named == field || named.hasPrefix(field + "["), "\(method) \(field) = \(value): \(failure ?? .null)", file: file, line: line)
                if let out = base["outDir"] as? String, FileManager.default.fileExists(atPath: out) { XCTFail("\(field) = \(value) wrote \(out)"); try? FileManager.default.removeItem(atPath: out) }
            }
        }
    }

    func testEveryFieldOfTheCompositeMethodsIsTypeCheckedAtDecode() throws {
        let work = try temporaryDirectory()
        let data = work.appendingPathComponent("train.jsonl")
        try Data(#"{"ids":[1,5,9,13,17,21,25,29]}"#.utf8).write(to: data)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let model = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny, id: 1))
        let dataset: [String: Any] = ["path": data.path, "format": "tokens"]
        let datasetFields = { (prefix: String) -> [(String, Kind)] in
            [(prefix, .object), ("\(prefix).path", .string), ("\(prefix).format", .string), ("\(prefix).trainOnInputs", .bool)]
        }
        let trainFields: [(String, Kind)] = [("seqLen", .size), ("microBatch", .size), ("gradAccum", .size), ("steps", .size),
                                             ("warmupSteps", .integer), ("lr", .number), ("weightDecay", .number), ("maxGradNorm", .number),
                                             ("schedule", .string), ("checkpointing", .string), ("activationDtype", .string),
                                             ("matmulDtype", .string), ("seed", .integer), ("packing", .bool), ("freeze", .strings),
                                             ("untieEmbeddings", .bool)]
        var id = 10

        // loram/run: every stage's part.
        let train: [String: Any] = ["dataset": dataset, "evalDataset": dataset, "seqLen": 8, "microBatch": 1, "steps": 1, "lr": 0.01,
                                    "lora": ["r": 2, "targets": ["q_proj"]]]
        let run: [String: Any] = ["path": DaemonModelTests.tiny, "outDir": work.appendingPathComponent("out").path, "train": train,
                                  "prune": ["method": "taylor", "ratio": 0.5, "calibration": dataset], "align": ["steps": 1, "dataset": dataset],
                                  "diagnostics": ["seqLen": 8, "dataset": dataset],
                                  "quantize": ["format": "nf4"], "recover": ["fill": "zero"],
                                  "eval": ["datasets": [dataset], "seqLen": 8, "maxSamples": 2]]
        var runFields: [(String, Kind)] = [("path", .string), ("dtype", .string), ("outDir", .string), ("stopIfFar", .bool), ("train", .object),
                                           ("prune.method", .string), ("prune.ratio", .number), ("prune.layers", .integers),
                                           ("prune.seed", .integer), ("prune.seqLen", .size),
                                           ("align.embeddings", .string), ("align.dtype", .string),
                                           ("diagnostics.seqLen", .size), ("diagnostics.maxSamples", .size),
                                           ("quantize.format", .string), ("quantize.blockSize", .integer), ("quantize.doubleQuant", .bool),
                                           ("recover.fill", .string), ("recover.seed", .integer),
                                           ("eval.seqLen", .size), ("eval.maxSamples", .size), ("eval.datasets", .strings),
                                           ("train.lora.r", .size), ("train.lora.alpha", .number), ("train.lora.dropout", .number),
                                           ("train.lora.targets", .strings), ("train.lora.seed", .integer), ("train.lora.bInitStd", .number)]
        runFields += trainFields.map { ("train.\($0.0)", $0.1) } + trainFields.map { ("align.\($0.0)", $0.1) }
        runFields += datasetFields("train.dataset") + datasetFields("train.evalDataset") + datasetFields("align.dataset")
            + datasetFields("diagnostics.dataset") + datasetFields("prune.calibration").dropFirst() + datasetFields("eval.datasets[0]")
        try check(d, "loram/run", base: run, fields: runFields, id: &id)
        var fromCarrier = run
        fromCarrier["prune"] = nil
        fromCarrier["carrier"] = ["path": work.path]
        try check(d, "loram/run", base: fromCarrier, fields: [("carrier.path", .string), ("carrier.dtype", .string)], id: &id)

        // train/create.
        let create = train.merging(["modelId": model]) { $1 }.filter { $0.key != "lora" }
        try check(d, "train/create", base: create, fields: [("modelId", .string), ("adapterId", .string)] + trainFields
                  + datasetFields("dataset") + datasetFields("evalDataset"), id: &id)

        // memory/plan.
        let plan: [String: Any] = ["model": ["preset": "llama-2-7b"], "workload": ["kind": "train", "seqLen": 8, "lora": ["r": 8], "prune": ["method": "random", "ratio": 0.5]]]
        try check(d, "memory/plan", base: plan, fields: [
            ("model.preset", .string), ("model.path", .string), ("model.modelId", .string), ("model.config", .object),
            ("workload.kind", .string), ("workload.seqLen", .size), ("workload.microBatch", .size), ("workload.gradAccum", .size),
            ("workload.lora.r", .size), ("workload.lora.targets", .strings), ("workload.baseDtype", .string),
            ("workload.activationDtype", .string), ("workload.optimizer", .string),
            ("workload.prune.method", .string), ("workload.prune.ratio", .number), ("workload.prune.layers", .integers),
            ("workload.prune.calibrationSeqLen", .size), ("hbmCapBytes", .integer), ("search", .bool), ("accounting", .string),
            ("detail", .bool), ("svg", .bool)], id: &id)

        // model/prune, model/compare, eval/perplexity, generate, model/forward.
        try check(d, "model/prune", base: ["modelId": model, "method": "taylor", "ratio": 0.5, "calibration": dataset],
                  fields: [("method", .string), ("ratio", .number), ("layers", .integers), ("seed", .integer), ("seqLen", .size)]
                  + datasetFields("calibration").dropFirst(), id: &id)
        try check(d, "model/compare", base: ["modelId": model, "otherModelId": model, "dataset": dataset],
                  fields: [("otherModelId", .string), ("seqLen", .size), ("maxSamples", .size)] + datasetFields("dataset"), id: &id)
        try check(d, "eval/perplexity", base: ["modelId": model, "dataset": dataset],
                  fields: [("adapterId", .string), ("seqLen", .size), ("maxSamples", .size)] + datasetFields("dataset"), id: &id)
        try check(d, "generate", base: ["modelId": model, "ids": [1, 2], "maxTokens": 2],
                  fields: [("prompt", .string), ("ids", .integers), ("maxTokens", .size), ("temperature", .number), ("topP", .number),
                           ("topK", .size), ("seed", .integer), ("stop", .strings), ("addBos", .bool)], id: &id)
        try check(d, "model/forward", base: ["modelId": model, "ids": [1, 2]],
                  fields: [("ids", .integers), ("logits", .string), ("logitsEncoding", .string)], id: &id)

        // Nothing was made or written.
        let list = try result(d, id + 1, "model/list", "{}")
        XCTAssertEqual(list["models"]?.arrayValue?.count, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("out").path))
        d.closeInput()
        _ = d.exitCode()
    }

    /// A bad value that only a late stage reads (quantize, train, recover) is refused by the decode,
    /// before the first stage loads, prunes or writes anything.
    func testALateStagesBadValueIsRefusedBeforeAnyStageRuns() throws {
        let work = try temporaryDirectory()
        let data = work.appendingPathComponent("train.jsonl")
        try Data(#"{"ids":[1,5,9,13,17,21,25,29]}"#.utf8).write(to: data)
        let out = work.appendingPathComponent("out")
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let train = #""train":{"dataset":{"path":"\#(data.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":1,"lr":0.01"#
        let cases: [(String, String)] = [
            (#""quantize":{"blockSize":17},\#(train)}"#, "quantize.blockSize"),
            (#""quantize":"int3",\#(train)}"#, "quantize.format"),
            (#"\#(train),"schedule":"sideways"}"#, "train.schedule"),
            (#"\#(train),"lora":{"alpha":-1}}"#, "train.lora.alpha"),
            (#"\#(train),"lora":{"targets":["q_proj","wq"]}}"#, "train.lora.targets[1]"),
            (#""recover":{"fill":"ones"},\#(train)}"#, "recover.fill"),
            (#""align":{"lr":-1},\#(train)}"#, "align.lr"),
            (#""align":{"schedule":"x"},\#(train)}"#, "align.schedule"),
        ]
        for (i, (part, field)) in cases.enumerated() {
            let failure = error(d, 10 + i, "loram/run", #"{"path":"\#(DaemonModelTests.tiny)","outDir":"\#(out.path)","prune":{"method":"random","ratio":0.5},\#(part)}"#)
            XCTAssertEqual(failure?["code"], .int(-32602), "\(part): \(failure ?? .null)")
            XCTAssertEqual(failure?["data"]?["field"], .string(field), "\(part): \(failure ?? .null)")
            XCTAssertTrue(failure?["message"]?.stringValue?.contains("'\(field)'") == true, "\(failure ?? .null)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written")
        XCTAssertEqual(try result(d, 30, "model/list", "{}")["models"], .array([]), "nothing loaded")
        d.closeInput()
        _ = d.exitCode()
    }
}
