import XCTest
import RPC

/// memory/plan through the process: presets, loaded models, paper accounting, detail, search, errors.
final class DaemonPlanTests: XCTestCase {
    func testPlansAnswerWithoutLoadingAnything() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize(#"{"hbmCapBytes":21474836480}"#))
        let workload = #"{"kind":"train","microBatch":1,"seqLen":512,"lora":{"r":8},"baseDtype":"nf4","prune":{"method":"taylor","ratio":0.85}}"#
        d.request(1, "memory/plan", #"{"model":{"preset":"llama-3.1-70b"},"workload":\#(workload),"accounting":"paper"}"#)
        let paper = try XCTUnwrap(d.response(id: 1)?["result"], "\(d.received.last ?? .null)")
        XCTAssertEqual(paper["parameters"]?["carrier"], .int(17_849_982_976))
        XCTAssertEqual(paper["fits"], .bool(true))
        guard case .double(let reduction)? = paper["reduction"] else { return XCTFail() }
        XCTAssertEqual(String(format: "%.2f", reduction), "15.81")

        d.request(2, "memory/plan", #"{"model":{"preset":"llama-3.1-70b"},"workload":\#(workload),"detail":true}"#)
        let full = try XCTUnwrap(d.response(id: 2)?["result"])
        guard case .array(let buffers)? = full["buffers"], case .array(let live)? = full["liveAtPeak"] else { return XCTFail("\(full)") }
        XCTAssertGreaterThan(buffers.count, 200)
        XCTAssertFalse(live.isEmpty)
        XCTAssertGreaterThanOrEqual(full["peakBytes"]?.intValue ?? 0, full["lowerBoundBytes"]?.intValue ?? 1)

        // Over the cap with search: a suggestion whose peak fits.
        d.request(3, "memory/plan", #"{"model":{"preset":"llama-2-70b"},"workload":{"kind":"train","microBatch":4,"seqLen":512,"lora":{"r":8},"baseDtype":"bf16"},"search":true}"#)
        let over = try XCTUnwrap(d.response(id: 3)?["result"])
        XCTAssertEqual(over["fits"], .bool(false))
        XCTAssertLessThanOrEqual(over["suggestion"]?["peakBytes"]?.intValue ?? .max, 21_474_836_480)

        // The golden tiny config by path, and a loaded model by id, plan the same.
        let tinyConfig = DaemonModelTests.golden.appendingPathComponent("tiny/config.json").path
        let small = #"{"kind":"generate","seqLen":32,"newTokens":8,"baseDtype":"f32"}"#
        d.request(4, "memory/plan", #"{"model":{"path":"\#(tinyConfig)"},"workload":\#(small)}"#)
        let modelId = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny))
        d.request(5, "memory/plan", #"{"model":"\#(modelId)","workload":\#(small)}"#)
        XCTAssertEqual(d.response(id: 4)?["result"]?["peakBytes"], d.response(id: 5)?["result"]?["peakBytes"])

        for (i, (params, field)) in [(#"{"model":{"preset":"gpt-5"},"workload":\#(small)}"#, "model.preset"),
                                     (#"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"dance","seqLen":8}}"#, "workload.kind"),
                                     (#"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"train","seqLen":8,"prune":{"method":"taylor","ratio":1.5}}}"#, "workload.prune"),
                                     (#"{"model":{"preset":"llama-2-7b"},"workload":\#(small),"accounting":"creative"}"#, "accounting")].enumerated() {
            d.request(10 + i, "memory/plan", params)
            XCTAssertEqual(d.response(id: 10 + i)?["error"]?["data"]?["field"], .string(field), params)
        }
        d.request(20, "model/list")
        XCTAssertEqual(d.response(id: 20)?["result"]?["memory"]?["usedBytes"]?.intValue, d.received.compactMap { $0["result"]?["bytes"]?.intValue }.first,
                       "plans allocate nothing: only the loaded model is charged")
        d.closeInput()
        _ = d.exitCode()
    }
}

/// The phases of a pipeline.
extension DaemonPlanTests {
    func testTaylorPruningAddsItsOwnPhaseOnTheOriginalModel() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let workload = #""kind":"train","microBatch":1,"seqLen":512,"lora":{"r":8},"baseDtype":"nf4""#
        d.request(1, "memory/plan", #"{"model":{"preset":"llama-3.1-70b"},"hbmCapBytes":21474836480,"workload":{\#(workload),"prune":{"method":"taylor","ratio":0.85}}}"#)
        let result = try XCTUnwrap(d.response(id: 1)?["result"], "\(d.received.last ?? .null)")
        guard case .array(let phases)? = result["phases"] else { return XCTFail("no phases: \(result)") }
        XCTAssertEqual(phases.count, 2)
        XCTAssertEqual(phases[0]["phase"], .string("prune"))
        XCTAssertEqual(phases[0]["seqLen"], .int(64))
        XCTAssertEqual(phases[0]["fits"], .bool(false), "Taylor importance on 70B needs its fp32 gradients")
        XCTAssertEqual(phases[1]["phase"], .string("train"))
        XCTAssertEqual(phases[1]["peakBytes"], result["peakBytes"])
        // random and l2 importance need no gradient phase.
        d.request(2, "memory/plan", #"{"model":{"preset":"llama-3.1-70b"},"workload":{\#(workload),"prune":{"method":"l2","ratio":0.85}}}"#)
        guard case .array(let l2Phases)? = d.response(id: 2)?["result"]?["phases"] else { return XCTFail("no phases") }
        XCTAssertEqual(l2Phases.count, 1)
        d.request(3, "memory/plan", #"{"model":{"preset":"llama-3.1-70b"},"workload":{\#(workload),"prune":{"method":"taylor","ratio":0.85,"calibrationSeqLen":1}}}"#)
        XCTAssertEqual(d.response(id: 3)?["error"]?["data"]?["field"], .string("workload.prune.calibrationSeqLen"))
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonPlanTests {
    /// The contract spells it `baseDtype`; loramd's first spelling `baseDType` still works; both must agree.
    func testBaseDtypeAsTheContractSpellsIt() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        func peak(_ id: Int, _ dtype: String) -> JSONValue? {
            d.request(id, "memory/plan", #"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"generate","seqLen":64,\#(dtype)}}"#)
            return d.response(id: id)?["result"]?["peakBytes"]
        }
        let nf4 = peak(1, #""baseDtype":"nf4""#), legacy = peak(2, #""baseDType":"nf4""#), bf16 = peak(3, #""baseDtype":"bf16""#)
        XCTAssertNotNil(nf4)
        XCTAssertEqual(nf4, legacy)
        XCTAssertNotEqual(nf4, bf16)
        d.request(4, "memory/plan", #"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"generate","seqLen":64,"baseDtype":"nf4","baseDType":"bf16"}}"#)
        XCTAssertEqual(d.response(id: 4)?["error"]?["data"]?["field"], .string("workload.baseDtype"))
        d.closeInput()
        _ = d.exitCode()
    }
}

extension DaemonPlanTests {
    /// `svg: true` returns the daemon's own picture of the arena.
    func testThePlanCanComeWithItsPicture() throws {
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        d.request(1, "memory/plan", #"{"model":{"preset":"llama-2-7b"},"workload":{"kind":"train","seqLen":64,"lora":{"r":8}},"svg":true}"#)
        let svg = try XCTUnwrap(d.response(id: 1)?["result"]?["svg"]?.stringValue, "\(d.received.last ?? .null)")
        XCTAssertTrue(svg.contains("<svg") && svg.contains("</svg>"))
        XCTAssertGreaterThan(svg.components(separatedBy: "<rect").count, 100, "a rectangle per buffer")
        d.closeInput()
        _ = d.exitCode()
    }
}
