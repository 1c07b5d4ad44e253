import Foundation
import XCTest
import RPC

/// `model/prune` and `adapter/recover` through the real process on the golden tiny model (GQA 4
/// heads over 2 kv heads, 2 layers, both pruned by default): prune, train LoRA on the carrier,
/// recover onto the original, save and load both; and every refusal, which changes nothing.
final class DaemonPruneTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    func forward(_ d: DaemonProcess, _ id: Int, modelId: String, adapterId: String? = nil, ids: [Int]) throws -> [Float] {
        let adapter = adapterId.map { #","adapterId":"\#($0)""# } ?? ""
        let logits = try result(d, id, "model/forward", #"{"modelId":"\#(modelId)"\#(adapter),"ids":\#(ids),"logits":"all"}"#)["logits"]
        return floats(logits)
    }

    func element(_ value: JSONValue?, _ index: Int) -> JSONValue? {
        guard case .array(let items)? = value, items.indices.contains(index) else { return nil }
        return items[index]
    }

    /// A tokens dataset of ten short sequences.
    func tokensDataset(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("train.jsonl")
        let lines = (0..<10).map { i -> String in #"{"ids":\#([1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 })}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    /// Parameters of tiny with `heads`, `kvHeads`, `neurons` in both layers (head_dim 16, hidden 64, vocab 512).
    static func tinyParameters(heads: Int, kvHeads: Int, neurons: Int) -> Int {
        512 * 64 * 2 + 64 + 2 * (128 + 2 * heads * 16 * 64 + 2 * kvHeads * 16 * 64 + 3 * neurons * 64)
    }

    func testPruneTrainRecoverSaveAndLoad() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let work = try temporaryDirectory()
        let ids = try goldenInputIds()
        let originalId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let base = try forward(d, 2, modelId: originalId, ids: ids)

        let pruned = try result(d, 3, "model/prune", #"{"modelId":"\#(originalId)","method":"random","ratio":0.5,"seed":3}"#)
        let carrierId = try XCTUnwrap(pruned["modelId"]?.stringValue)
        XCTAssertNotEqual(carrierId, originalId)
        let carrierParameters = Self.tinyParameters(heads: 2, kvHeads: 1, neurons: 88)
        XCTAssertEqual(pruned["parameters"], .int(Int64(carrierParameters)))
        XCTAssertEqual(pruned["paperParameters"]?["original"], .int(Int64(Self.tinyParameters(heads: 4, kvHeads: 2, neurons: 176))))
        XCTAssertEqual(try XCTUnwrap(pruned["reduction"]?.doubleValue),
                       Double(Self.tinyParameters(heads: 4, kvHeads: 2, neurons: 176)) / Double(carrierParameters), accuracy: 1e-12)
        let layer: JSONValue = .object([("heads", .int(2)), ("kvHeads", .int(1)), ("neurons", .int(88)), ("pruned", .bool(true))])
        guard case .array(let layers)? = pruned["layers"] else { return XCTFail("no layers in \(pruned)") }
        XCTAssertEqual(layers.count, 2)
        for (i, entry) in layers.enumerated() {
            XCTAssertEqual(entry["layer"], .int(Int64(i)))
            for key in ["heads", "kvHeads", "neurons", "pruned"] { XCTAssertEqual(entry[key], layer[key], key) }
        }
        // The config summary states each layer's widths (the top-level ones are the original's).
        guard case .array(let shapes)? = pruned["config"]?["layerShapes"] else { return XCTFail("no layerShapes in \(pruned)") }
        XCTAssertEqual(shapes.first, .object([("heads", .int(2)), ("kvHeads", .int(1)), ("intermediate", .int(88))]))
        // The original stays loaded and unchanged.
        XCTAssertEqual(try forward(d, 4, modelId: originalId, ids: ids), base)

        // LoRA on the carrier: train a few steps, then recover onto the original.
        let dataset = try tokensDataset(in: work)
        let adapter = try result(d, 5, "adapter/create", #"{"modelId":"\#(carrierId)","r":4,"alpha":8,"targets":["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"],"seed":1}"#)
        let adapterId = try XCTUnwrap(adapter["adapterId"]?.stringValue)
        let job = try result(d, 6, "train/create", #"{"modelId":"\#(carrierId)","adapterId":"\#(adapterId)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":2,"steps":3,"lr":0.01}"#)
        let jobId = try XCTUnwrap(job["jobId"]?.stringValue)
        _ = try result(d, 7, "train/step", #"{"jobId":"\#(jobId)","steps":3}"#)

        let recovered = try result(d, 8, "adapter/recover", #"{"adapterId":"\#(adapterId)","targetModelId":"\#(originalId)"}"#)
        let recoveredId = try XCTUnwrap(recovered["adapterId"]?.stringValue)
        XCTAssertEqual(recovered["modelId"], .string(originalId))
        XCTAssertEqual(recovered["recoveredFrom"], .string(adapterId))
        // r · (in + out) per linear of the original: q/o 64+64, k/v 64+32, gate/up/down 64+176.
        let recoveredParameters: Int = 2 * 4 * (128 * 2 + 96 * 2 + 240 * 3)
        XCTAssertEqual(recovered["parameters"], .int(Int64(recoveredParameters)))
        let adapted = try forward(d, 9, modelId: originalId, adapterId: recoveredId, ids: ids)
        XCTAssertGreaterThan(maxAbsDifference(adapted, base), 1e-4, "the trained update reaches the original")

        // The recovered adapter saves in PEFT's layout and loads back onto the original.
        let adapterDirectory = work.appendingPathComponent("recovered")
        _ = try result(d, 10, "adapter/save", #"{"adapterId":"\#(recoveredId)","path":"\#(adapterDirectory.path)"}"#)
        let reloaded = try XCTUnwrap(try result(d, 11, "adapter/load", #"{"modelId":"\#(originalId)","path":"\#(adapterDirectory.path)"}"#)["adapterId"]?.stringValue)
        XCTAssertEqual(try forward(d, 12, modelId: originalId, adapterId: reloaded, ids: ids), adapted)

        // The carrier saves with its manifest and loads back as the same model.
        let carrierLogits = try forward(d, 13, modelId: carrierId, ids: ids)
        let carrierDirectory = work.appendingPathComponent("carrier")
        let saved = try result(d, 14, "model/save", #"{"modelId":"\#(carrierId)","path":"\#(carrierDirectory.path)"}"#)
        XCTAssertTrue(saved["files"].map { "\($0)" }?.contains("loram_pruning.json") == true, "\(saved)")
        let loaded = try result(d, 15, "model/load", #"{"path":"\#(carrierDirectory.path)"}"#)
        XCTAssertEqual(loaded["parameters"], .int(Int64(carrierParameters)))
        let loadedId = try XCTUnwrap(loaded["modelId"]?.stringValue)
        XCTAssertEqual(try forward(d, 16, modelId: loadedId, ids: ids), carrierLogits)
        let listing = try result(d, 17, "model/list", "{}")
        XCTAssertTrue("\(listing)".contains("random"), "model/list shows the pruning")

        // A fresh (B = 0) adapter on the carrier recovers to an exact no-op, zero or normal fill.
        let fresh = try XCTUnwrap(try result(d, 18, "adapter/create", #"{"modelId":"\#(loadedId)","r":4,"alpha":8,"targets":["o_proj","down_proj","q_proj"],"seed":2}"#)["adapterId"]?.stringValue)
        for (i, fill) in [#""fill":"zero""#, #""fill":"normal","seed":4"#].enumerated() {
            let noOp = try XCTUnwrap(try result(d, 19 + 2 * i, "adapter/recover", #"{"adapterId":"\#(fresh)","targetModelId":"\#(originalId)",\#(fill)}"#)["adapterId"]?.stringValue)
            XCTAssertEqual(try forward(d, 20 + 2 * i, modelId: originalId, adapterId: noOp, ids: ids), base, fill)
        }
    }

    func testTaylorSemiAndMagnitude() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let work = try temporaryDirectory()
        let dataset = try tokensDataset(in: work)
        let originalId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let original = Self.tinyParameters(heads: 4, kvHeads: 2, neurons: 176)

        let taylor = try result(d, 2, "model/prune", #"{"modelId":"\#(originalId)","method":"taylor","ratio":0.3,"layers":[1,2],"calibration":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16}"#)
        // 0.3 keeps both kv groups (2 − int(0.6)) and 176 − ceil(52.8) = 123 neurons, in layer 1 only.
        XCTAssertEqual(element(taylor["layers"], 0)?["pruned"], .bool(false))
        XCTAssertEqual(element(taylor["layers"], 1)?["neurons"], .int(123))
        XCTAssertEqual(element(taylor["layers"], 1)?["kvHeads"], .int(2))
        XCTAssertGreaterThan(try XCTUnwrap(taylor["calibration"]?["loss"]?.doubleValue), 0)
        XCTAssertGreaterThan(try XCTUnwrap(taylor["calibration"]?["tokens"]?.doubleValue), 0)

        let semi = try result(d, 3, "model/prune", #"{"modelId":"\#(originalId)","method":"semi"}"#)
        XCTAssertEqual(semi["parameters"], .int(Int64(original)), "shapes stay")
        let linears = 2 * (64 * 64 * 2 + 32 * 64 * 2 + 176 * 64 * 3)
        XCTAssertEqual(semi["paperParameters"]?["carrier"], .int(Int64(original - linears / 2)))
        let magnitude = try result(d, 4, "model/prune", #"{"modelId":"\#(originalId)","method":"magnitude","ratio":0.55}"#)
        XCTAssertEqual(try XCTUnwrap(magnitude["ratio"]?.doubleValue), 0.55)

        // Full-parameter alignment of the 2:4 carrier runs (and keeps its zeros: RuntimeTests).
        let semiId = try XCTUnwrap(semi["modelId"]?.stringValue)
        let job = try result(d, 5, "train/create", #"{"modelId":"\#(semiId)","freeze":["lm_head"],"dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":16,"microBatch":2,"steps":2,"lr":0.001}"#)
        let step = try result(d, 6, "train/step", #"{"jobId":"\#(try XCTUnwrap(job["jobId"]?.stringValue))","steps":2}"#)
        XCTAssertEqual(step["step"], .int(2))
    }

    func testRefusalsNameTheFieldAndChangeNothing() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let originalId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let before = try result(d, 2, "model/list", "{}")

        let dataset = #"{"path":"/nonexistent.jsonl","format":"tokens"}"#
        let cases: [(String, String, String?)] = [
            (#""method":"prune-it","ratio":0.5"#, "method", "random, l2, taylor, semi, magnitude"),
            (#""method":"l2""#, "ratio", "required"),
            (#""method":"l2","ratio":1.0"#, "ratio", "outside [0, 1)"),
            (#""method":"magnitude","ratio":-0.1"#, "ratio", "outside [0, 1)"),
            (#""method":"l2","ratio":0.5,"layers":[0,5]"#, "layers", "do not fit a model of 2 layers"),
            (#""method":"l2","ratio":0.5,"layers":[1]"#, "layers", "[start, end)"),
            (#""method":"semi","layers":[0,1]"#, "layers", "structured"),
            (#""method":"semi","ratio":0.6"#, "ratio", "0.5"),
            (#""method":"taylor","ratio":0.5"#, "calibration", "required for taylor"),
            (#""method":"l2","ratio":0.5,"calibration":\#(dataset)"#, "calibration", "taylor only"),
            (#""method":"l2","ratio":0.5,"seed":3"#, "seed", "random only"),
            (#""method":"taylor","ratio":0.5,"seqLen":1,"calibration":\#(dataset)"#, "seqLen", "at least 2"),
        ]
        for (i, (params, field, text)) in cases.enumerated() {
            let error = try XCTUnwrap(error(d, 10 + i, "model/prune", #"{"modelId":"\#(originalId)",\#(params)}"#), params)
            XCTAssertEqual(error["code"], .int(-32602), params)
            XCTAssertEqual(error["data"]?["field"], .string(field), params)
            if let text { XCTAssertTrue(error["message"]?.stringValue?.contains(text) == true, "\(params): \(error)") }
        }
        let missing = error(d, 30, "model/prune", #"{"modelId":"\#(originalId)","method":"taylor","ratio":0.5,"calibration":\#(dataset)}"#)
        XCTAssertEqual(missing?["code"], .int(-31001))
        XCTAssertEqual(error(d, 31, "model/prune", #"{"modelId":"model-9","method":"l2","ratio":0.5}"#)?["code"], .int(-31001))
        XCTAssertEqual(try result(d, 32, "model/list", "{}"), before, "nothing was loaded or charged")

        // A carrier is not pruned again; recovery needs a carrier's adapter and its original.
        let carrierId = try XCTUnwrap(try result(d, 40, "model/prune", #"{"modelId":"\#(originalId)","method":"l2","ratio":0.5}"#)["modelId"]?.stringValue)
        let again = error(d, 41, "model/prune", #"{"modelId":"\#(carrierId)","method":"l2","ratio":0.5}"#)
        XCTAssertEqual(again?["data"]?["field"], .string("modelId"))
        let onOriginal = try XCTUnwrap(try result(d, 42, "adapter/create", #"{"modelId":"\#(originalId)","r":2,"alpha":4,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        let onCarrier = try XCTUnwrap(try result(d, 43, "adapter/create", #"{"modelId":"\#(carrierId)","r":2,"alpha":4,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        let withAdapters = try result(d, 44, "model/list", "{}")
        let recoverCases: [(String, String, String)] = [
            (#""adapterId":"\#(onOriginal)","targetModelId":"\#(originalId)""#, "adapterId", "not a pruned model"),
            (#""adapterId":"\#(onCarrier)","targetModelId":"\#(carrierId)""#, "targetModelId", "does not have the shapes"),
            (#""adapterId":"\#(onCarrier)","targetModelId":"\#(originalId)","fill":"random""#, "fill", "zero or normal"),
            (#""adapterId":"\#(onCarrier)","targetModelId":"\#(originalId)","seed":3"#, "seed", "fill normal"),
            (#""adapterId":"\#(onCarrier)","targetModelId":"model-9""#, "targetModelId", "model-9"),
            (#""adapterId":"adapter-99","targetModelId":"\#(originalId)""#, "adapterId", "adapter-99"),
        ]
        for (i, (params, field, text)) in recoverCases.enumerated() {
            let error = try XCTUnwrap(error(d, 50 + i, "adapter/recover", "{\(params)}"), params)
            XCTAssertEqual(error["data"]?["field"], .string(field), params)
            XCTAssertTrue("\(error)".contains(text), "\(params): \(error)")
        }
        XCTAssertEqual(try result(d, 60, "model/list", "{}"), withAdapters, "no adapter was made or charged")
    }

    func testOverBudgetPruneChargesNothing() throws {
        let d = try DaemonProcess()
        let modelBytes = Self.tinyParameters(heads: 4, kvHeads: 2, neurons: 176) * 4
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":\#(modelBytes + 100_000)}"#))
        let originalId = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(Self.tiny)"}"#)["modelId"]?.stringValue)
        let before = try result(d, 2, "model/list", "{}")
        XCTAssertEqual(error(d, 3, "model/prune", #"{"modelId":"\#(originalId)","method":"l2","ratio":0.5}"#)?["code"], .int(-31020))
        XCTAssertEqual(try result(d, 4, "model/list", "{}"), before)
    }
}
