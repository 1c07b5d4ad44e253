import Foundation
import XCTest
import RPC

/// The real `loramd` process over pipes: command line, lifecycle and exit codes.
final class DaemonLifecycleTests: XCTestCase {
    func testVersionHelpAndBadArguments() throws {
        let (versionCode, version) = try DaemonProcess.run(["--version"])
        XCTAssertEqual(versionCode, 0)
        XCTAssertTrue(version.hasPrefix("loramd 0."), version)
        let (helpCode, help) = try DaemonProcess.run(["--help"])
        XCTAssertEqual(helpCode, 0)
        XCTAssertTrue(help.contains("usage: loramd") && help.contains("--debug-methods"), help)
        let (badCode, bad) = try DaemonProcess.run(["--frobnicate"])
        XCTAssertEqual(badCode, 2)
        XCTAssertTrue(bad.contains("unknown argument '--frobnicate'"), bad)
    }

    func testInitializeModelListShutdownExit() throws {
        let d = try DaemonProcess(arguments: [])
        d.request(1, "model/list")
        XCTAssertEqual(d.response(id: 1)?["error"]?["code"], .int(-32002))
        let result = try XCTUnwrap(d.initialize(#"{"processId":null,"hbmCapBytes":123456789,"threads":1,"capabilities":{},"rootUri":null}"#))
        XCTAssertEqual(result["serverInfo"]?["name"], .string("loramd"))
        guard case .array(let methods)? = result["capabilities"]?["methods"] else { return XCTFail("\(result)") }
        XCTAssertTrue(methods.contains(.string("model/list")))
        XCTAssertTrue(methods.contains(.string("shutdown")))
        XCTAssertEqual(result["capabilities"]?["dtypes"], .array([.string("bf16"), .string("f16"), .string("f32")]))
        XCTAssertFalse(methods.contains(.string("debug/sleep")), "debug methods only with --debug-methods")
        XCTAssertEqual(result["device"]?["hbmCapBytes"], .int(123456789))
        XCTAssertEqual(result["device"]?["threads"], .int(1))
        XCTAssertEqual(result["device"]?["kind"], .string("cpu"))

        d.request(2, "model/list")
        let list = try XCTUnwrap(d.response(id: 2)?["result"])
        XCTAssertEqual(list["models"], .array([]))
        XCTAssertEqual(list["adapters"], .array([]))
        XCTAssertEqual(list["jobs"], .array([]))
        XCTAssertEqual(list["memory"]?["capBytes"], .int(123456789))
        XCTAssertEqual(list["memory"]?["usedBytes"], .int(0))

        d.send(#"{"jsonrpc":"2.0","id":3,"method":"shutdown","params":null}"#)
        XCTAssertEqual(d.response(id: 3)?["result"], .null)
        d.request(4, "model/list")
        XCTAssertEqual(d.response(id: 4)?["error"]?["code"], .int(-32600))
        d.notify("exit")
        XCTAssertEqual(d.exitCode(), 0)
    }

    func testDefaultCapIsAShareOfPhysicalMemory() throws {
        let d = try DaemonProcess(arguments: [])
        let result = try XCTUnwrap(d.initialize())
        let memory = try XCTUnwrap(result["device"]?["memoryBytes"]?.intValue)
        let cap = try XCTUnwrap(result["device"]?["hbmCapBytes"]?.intValue)
        XCTAssertEqual(Double(cap), Double(memory) * 0.8, accuracy: 1)
        XCTAssertEqual(result["device"]?["hbmCapFraction"], .double(0.8))
        d.notify("exit")
        XCTAssertEqual(d.exitCode(), 1)
    }

    /// What initialize cannot honour on this machine is said in its reply (and logged), not only
    /// logged: a cap above physical memory, bf16 products without AMX.
    func testInitializeSaysWhatThisMachineCannotDo() throws {
        let d = try DaemonProcess()
        let result = try XCTUnwrap(d.initialize(#"{"processId":null,"hbmCapBytes":\#(Int64(1) << 46),"matmulDtype":"bf16"}"#))
        let warnings = result["warnings"]?.arrayValue?.compactMap(\.stringValue) ?? []
        XCTAssertEqual(result["device"]?["hbmCapBytes"], .int(Int64(1) << 46), "the cap is taken as given")
        XCTAssertTrue(warnings.contains { $0.hasPrefix("hbmCapBytes 65536.0 GiB is more than this machine's") }, "\(warnings)")
        let amx = try XCTUnwrap(result["device"]?["amx"]?.boolValue)
        XCTAssertEqual(warnings.contains { $0.contains("needs Intel AMX") }, !amx, "\(warnings)")
        XCTAssertEqual(result["device"]?["matmulDtype"], .string(amx ? "bf16" : "f32"))
        XCTAssertTrue(d.wait { $0.contains { $0["method"] == .string("window/logMessage") && $0["params"]?["message"]?.stringValue?.hasPrefix("hbmCapBytes") == true } })
        d.closeInput()
        _ = d.exitCode()
        let plain = try DaemonProcess()
        XCTAssertNil(try XCTUnwrap(plain.initialize())["warnings"], "no warnings, no field")
        plain.closeInput()
        _ = plain.exitCode()
    }

    func testBadInitializeParamsLeaveTheServerUninitialized() throws {
        let d = try DaemonProcess(arguments: [])
        d.request(1, "initialize", #"{"hbmCapBytes":-1}"#)
        XCTAssertEqual(d.response(id: 1)?["error"]?["data"]?["field"], .string("hbmCapBytes"))
        d.request(2, "initialize", #"{"threads":"many"}"#)
        XCTAssertEqual(d.response(id: 2)?["error"]?["data"]?["field"], .string("threads"))
        d.request(3, "model/list")
        XCTAssertEqual(d.response(id: 3)?["error"]?["code"], .int(-32002))
        XCTAssertNotNil(d.initialize())
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testExitWithoutShutdownExitsOne() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.notify("exit")
        XCTAssertEqual(d.exitCode(), 1)
    }

    func testEndOfInputCancelsWorkAndExits() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "debug/sleep", #"{"ms":60000}"#)
        Thread.sleep(forTimeInterval: 0.2)
        let start = Date()
        d.closeInput()
        XCTAssertEqual(d.response(id: 1)?["error"]?["code"], .int(-32800))
        XCTAssertEqual(d.exitCode(), 1)
        // The sleep lasts 60 s: ending well before it shows the input's end cancelled it.
        XCTAssertLessThan(Date().timeIntervalSince(start), 30)
    }

    func testEndOfInputAfterShutdownExitsZero() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "shutdown")
        XCTAssertNotNil(d.response(id: 1))
        d.closeInput()
        XCTAssertEqual(d.exitCode(), 0)
    }

    func testOrphanedDaemonExitsWhenItsClientProcessIsGone() throws {
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/bin/sleep")
        client.arguments = ["0.3"]
        try client.run()
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"processId":\#(client.processIdentifier)}"#))
        client.waitUntilExit()
        // The watcher polls once a second; the stdin pipe stays open all along.
        XCTAssertEqual(d.exitCode(), 1)
    }
}

extension DaemonLifecycleTests {
    func testPlanCommandPrintsJSONAndDrawsThePicture() throws {
        let svg = FileManager.default.temporaryDirectory.appendingPathComponent("plan-\(UUID().uuidString).svg")
        defer { try? FileManager.default.removeItem(at: svg) }
        let (code, output) = try DaemonProcess.run(["plan", "--preset", "llama-3.1-70b", "--prune", "0.85", "--nf4", "--seq", "512",
                                            "--cap", "18GiB", "--search", "--json", "--svg", svg.path])
        XCTAssertEqual(code, PlanCommandStatus.doesNotFit, output)
        // (On a machine with under 18 GiB, stderr's note on the cap comes first.)
        let json = output.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("loramd plan: note:") }.joined(separator: "\n")
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["fits"] as? Bool, false)
        XCTAssertEqual((object["parameters"] as? [String: Any])?["carrier"] as? Int, 17_849_982_976)
        let suggestion = try XCTUnwrap(object["suggestion"] as? [String: Any])
        XCTAssertEqual((suggestion["changes"] as? [String: String])?["checkpointing"], "layer")
        XCTAssertLessThanOrEqual(try XCTUnwrap(suggestion["peakBytes"] as? Int), 18 << 30)
        let picture = try String(contentsOf: svg, encoding: .utf8)
        XCTAssertTrue(picture.hasPrefix("<svg") || picture.hasPrefix("<?xml"), String(picture.prefix(80)))
        let (paperCode, paper) = try DaemonProcess.run(["plan", "--preset", "llama-2-70b", "--prune", "0.85", "--paper", "--json", "--base", "bf16"])
        XCTAssertEqual(paperCode, 0)
        let paperObject = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(paper.utf8)) as? [String: Any])
        XCTAssertEqual(paperObject["peakBytes"] as? Int, 16_272_924_672 * 2, "the paper's HBM column: carrier parameters × 2 bytes")
        let (badCode, bad) = try DaemonProcess.run(["plan", "--preset", "gpt-9"])
        XCTAssertEqual(badCode, 2)
        XCTAssertTrue(bad.contains("unknown preset"), bad)
    }

    /// Sizes as people write them (18G is 18 GiB, 24GB decimal), exit 3 on DOES NOT FIT, and a note
    /// when the cap is more than this machine has (planning for another machine stays allowed).
    func testPlanCommandReadsSizesAndExitsThreeWhenItDoesNotFit() throws {
        func plan(_ cap: String) throws -> (status: Int32, output: String) {
            try DaemonProcess.run(["plan", "--preset", "llama-3.1-70b", "--prune", "0.85", "--nf4", "--seq", "512", "--cap", cap])
        }
        let short = try plan("18G"), long = try plan("18GiB")
        XCTAssertEqual(short.status, PlanCommandStatus.doesNotFit, short.output)
        XCTAssertEqual(short.output, long.output, "18G is 18 GiB")
        XCTAssertTrue(short.output.contains("DOES NOT FIT under    18.00 GiB"), short.output)
        for (cap, gib) in [("20g", "20.00"), ("21474836480", "20.00"), ("22GB", "20.49"), ("20480M", "20.00"), ("0.02T", "20.48")] {
            let run = try plan(cap)
            XCTAssertEqual(run.status, 0, "\(cap): \(run.output)")
            XCTAssertTrue(run.output.contains("fits       under    \(gib) GiB"), "\(cap): \(run.output)")
        }
        for bad in ["18X", "G", "-1G", "0G", "18GiBs"] {
            let run = try plan(bad)
            XCTAssertEqual(run.status, 2, "\(bad): \(run.output)")
            XCTAssertTrue(run.output.contains("--cap takes bytes or a size like 18G"), "\(bad): \(run.output)")
        }
        let huge = try plan("100T")
        XCTAssertEqual(huge.status, 0, huge.output)
        XCTAssertTrue(huge.output.contains("loramd plan: note: --cap 102400.00 GiB is more than this machine's"), huge.output)
        XCTAssertFalse(short.output.contains("note:") && ProcessInfo.processInfo.physicalMemory > 18 << 30, short.output)
    }
}

/// `loramd plan`'s documented exit status for a plan over its cap (PlanCommand.doesNotFit; the
/// tests run the executable, so they state it).
enum PlanCommandStatus { static let doesNotFit: Int32 = 3 }

extension DaemonLifecycleTests {
    /// `loramd make-dataset`: train and held-out text in the `text` JSONL format, disjoint.
    func testMakeDatasetWritesDisjointTrainAndEvalSplits() throws {
        let directory = try temporaryDirectory()
        let (code, output) = try DaemonProcess.run(["make-dataset", "--out", directory.path, "--train-bytes", "20000", "--eval-bytes", "4000"])
        XCTAssertEqual(code, 0, output)
        func paragraphs(_ name: String) throws -> [String] {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                return try XCTUnwrap(object?["text"] as? String)
            }
        }
        let train = try paragraphs("train.jsonl"), eval = try paragraphs("eval.jsonl")
        XCTAssertGreaterThan(train.count, 50)
        XCTAssertGreaterThan(eval.count, 10)
        XCTAssertTrue(Set(train).isDisjoint(with: eval))
        XCTAssertGreaterThanOrEqual(train.reduce(0) { $0 + $1.utf8.count }, 19_000)
        let (badCode, bad) = try DaemonProcess.run(["make-dataset", "--out", directory.path, "--train-bytes", "-3"])
        XCTAssertEqual(badCode, 2)
        XCTAssertTrue(bad.contains("--train-bytes must be a positive integer"), bad)
    }
}
