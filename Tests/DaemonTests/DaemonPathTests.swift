import Foundation
import XCTest
import RPC

/// Paths in params: an empty one (which would mean the daemon's working directory) and one with a
/// NUL byte (which the file system would cut short) are InvalidParams naming the field, and
/// nothing is written.
final class DaemonPathTests: XCTestCase {
    func testEmptyAndNULPathsAreRefusedBeforeAnythingIsWritten() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let model = try XCTUnwrap(try result(d, 1, "model/load", #"{"path":"\#(DaemonModelTests.tiny)"}"#)["modelId"]?.stringValue)
        let adapter = try XCTUnwrap(try result(d, 2, "adapter/create", #"{"modelId":"\#(model)","r":2,"alpha":4,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        let directory = try temporaryDirectory()
        let nul = directory.appendingPathComponent("a").path + "\\u0000b"
        let cases: [(String, String, String)] = [
            ("model/save", #"{"modelId":"\#(model)","path":""}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(nul)"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":""}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(nul)","format":"gguf"}"#, "path"),
            ("model/load", #"{"path":""}"#, "path"),
            ("adapter/load", #"{"modelId":"\#(model)","path":"\#(nul)"}"#, "path"),
        ]
        for (index, (method, params, field)) in cases.enumerated() {
            let failure = error(d, 10 + index, method, params)
            XCTAssertEqual(failure?["code"]?.intValue, -32602, "\(method) \(params): \(String(describing: failure))")
            XCTAssertEqual(failure?["data"]?["field"]?.stringValue, field, "\(method) \(params)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }
}
