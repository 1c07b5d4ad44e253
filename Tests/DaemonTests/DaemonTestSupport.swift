import Foundation
import XCTest
import RPC

/// What the daemon tests share: scratch directories, requests whose result (or error) a test
/// needs, golden inputs, and logits compared across requests.
extension XCTestCase {
    /// A fresh directory under the system's temporary one, removed when the test ends.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loramd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// A daemon with the tiny model, a LoRA adapter on it and a LoRA training job on
    /// `work`/train.jsonl: what the output-path tests save.
    func outputSession(_ work: URL) throws -> (DaemonProcess, model: String, adapter: String, job: String) {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let model = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny, id: 1))
        let adapter = try XCTUnwrap(try result(d, 2, "adapter/create", #"{"modelId":"\#(model)","r":2,"alpha":4,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        let data = work.appendingPathComponent("train.jsonl")
        try Data(#"{"ids":[1,5,9,13,17,21,25,29]}"#.utf8).write(to: data)
        let job = try XCTUnwrap(try result(d, 3, "train/create", #"{"modelId":"\#(model)","adapterId":"\#(adapter)","dataset":{"path":"\#(data.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":2,"lr":0.01}"#)["jobId"]?.stringValue)
        return (d, model, adapter, job)
    }

    /// `method`'s result; an error response fails the test at the caller's line.
    func result(_ d: DaemonProcess, _ id: Int, _ method: String, _ params: String, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
        d.request(id, method, params)
        let response = d.response(id: id)
        return try XCTUnwrap(response?["result"], "\(method): \(response ?? .null)", file: file, line: line)
    }

    /// `method`'s error response (nil when it succeeded).
    func error(_ d: DaemonProcess, _ id: Int, _ method: String, _ params: String) -> JSONValue? {
        d.request(id, method, params)
        return d.response(id: id)?["error"]
    }

    /// Every number of a (nested) JSON array, flattened in order; anything else reads as NaN.
    func floats(_ value: JSONValue?) -> [Float] {
        guard case .array(let items)? = value else { return [] }
        return items.flatMap { item -> [Float] in
            if case .array = item { return floats(item) }
            return [Float(item.doubleValue ?? .nan)]
        }
    }

    func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// The golden tiny model's input ids.
    func goldenInputIds() throws -> [Int] {
        let url = DaemonModelTests.golden.appendingPathComponent("tiny_golden.json")
        return try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])?["input_ids"] as? [Int])
    }
}

extension DaemonProcess {
    /// Runs `loramd` with `arguments` (a subcommand such as make-model) to its end: exit status
    /// and what it printed on stdout and stderr together.
    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}
