import Foundation
import XCTest
import RPC

/// `model/quantize` through the real process: a new NF4 model beside the original, its bytes,
/// the errors, the bitsandbytes checkpoint round trip and the refusal of full-parameter training.
final class DaemonQuantizeTests: XCTestCase {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/golden")

    func allLogits(_ d: DaemonProcess, _ id: Int, _ modelId: String, _ ids: [Int]) throws -> JSONValue? {
        try result(d, id, "model/forward", #"{"modelId":"\#(modelId)","ids":\#(ids),"logits":"all"}"#)["logits"]
    }

    func testQuantizeSaveLoadAndErrors() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let tiny = Self.golden.appendingPathComponent("tiny").path
        let base = try result(d, 1, "model/load", #"{"path":"\#(tiny)"}"#)
        let baseId = try XCTUnwrap(base["modelId"]?.stringValue)
        let fp32Bytes = try XCTUnwrap(base["bytes"]?.intValue)

        let quantized = try result(d, 2, "model/quantize", #"{"modelId":"\#(baseId)","format":"nf4"}"#)
        let nf4Id = try XCTUnwrap(quantized["modelId"]?.stringValue)
        XCTAssertNotEqual(nf4Id, baseId)
        let bytes = try XCTUnwrap(quantized["bytes"]?.intValue)
        XCTAssertEqual(quantized["parameters"], base["parameters"])
        // Embeddings and lm_head (65,536 of the 158,016 parameters) stay fp32, the linears take ~0.52 B.
        XCTAssertLessThan(bytes, fp32Bytes / 2)
        guard case .double(let perParameter)? = quantized["bytesPerParameter"] else { return XCTFail("\(quantized)") }
        XCTAssertEqual(perParameter, Double(bytes) / Double(base["parameters"]?.intValue ?? 1), accuracy: 1e-12)

        let list = try result(d, 3, "model/list", "{}")
        guard case .array(let models)? = list["models"] else { return XCTFail("\(list)") }
        XCTAssertEqual(models.count, 2, "the original stays loaded")
        XCTAssertEqual(models.first { $0["modelId"] == .string(nf4Id) }?["dtype"], .string("nf4"))
        XCTAssertEqual(models.first { $0["modelId"] == .string(baseId) }?["dtype"], .string("f32"))
        XCTAssertEqual(list["memory"]?["usedBytes"]?.intValue, fp32Bytes + bytes)

        // Bad requests name the field and change nothing.
        XCTAssertEqual(error(d, 4, "model/quantize", #"{"modelId":"\#(baseId)","format":"int4"}"#)?["data"]?["field"], .string("format"))
        XCTAssertEqual(error(d, 5, "model/quantize", #"{"modelId":"\#(baseId)","format":"nf4","blockSize":48}"#)?["data"]?["field"], .string("blockSize"))
        XCTAssertEqual(error(d, 6, "model/quantize", #"{"modelId":"\#(nf4Id)","format":"nf4"}"#)?["data"]?["field"], .string("modelId"))
        XCTAssertEqual(error(d, 7, "model/quantize", #"{"modelId":"nope","format":"nf4"}"#)?["data"]?["field"], .string("modelId"))
        XCTAssertEqual(try result(d, 8, "model/list", "{}")["memory"]?["usedBytes"]?.intValue, fp32Bytes + bytes)

        // Saved in bitsandbytes' layout and loaded back: the same weights, the same logits.
        let ids = [1, 5, 9, 77, 3, 250, 11]
        let before = try allLogits(d, 9, nf4Id, ids)
        let directory = try temporaryDirectory()
        _ = try result(d, 10, "model/save", #"{"modelId":"\#(nf4Id)","path":"\#(directory.path)"}"#)
        let reloaded = try result(d, 11, "model/load", #"{"path":"\#(directory.path)"}"#)
        XCTAssertEqual(reloaded["bytes"]?.intValue, bytes)
        let reloadedId = try XCTUnwrap(reloaded["modelId"]?.stringValue)
        XCTAssertEqual(try allLogits(d, 12, reloadedId, ids), before)
        XCTAssertNotEqual(try allLogits(d, 13, baseId, ids), before)

        // An NF4 model is a frozen base: full-parameter training is refused before anything is charged.
        let dataset = directory.appendingPathComponent("train.jsonl")
        try Data(#"{"ids":[1,5,9,77,3,250,11,4,8],"labels":[1,5,9,77,3,250,11,4,8]}"#.utf8).write(to: dataset)
        let refused = error(d, 14, "train/create", #"{"modelId":"\#(nf4Id)","dataset":{"path":"\#(dataset.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":1,"lr":0.01}"#)
        XCTAssertEqual(refused?["data"]?["field"], .string("adapterId"), "\(refused ?? .null)")
    }
}
