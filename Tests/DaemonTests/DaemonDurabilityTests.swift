import Foundation
import XCTest
import RPC
import MemoryPlanner

/// Durability through the real process: kill -9 during train/run at random moments never leaves
/// a torn checkpoint, train/resume of the outDir continues from the newest complete one (losing
/// at most saveEvery steps) and clears the killed daemon's temporaries; concurrent saves to one
/// path leave one whole model.
final class DaemonDurabilityTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }
    let saveEvery = 2

    func dataset(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("train.jsonl")
        let lines = (0..<10).map { i -> String in
            let ids = [1] + (0..<(8 + i % 5)).map { 3 + ($0 * 7 + i * 13) % 90 }
            return #"{"ids":\#(ids),"labels":\#(ids)}"#
        }
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    func entries(_ url: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }

    /// The step every visible checkpoint folder records, after checking it is whole: a state.json
    /// that parses and names its step, and the files a resume and a model/load read.
    func completeCheckpoints(_ outDir: URL, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        var steps: [Int] = []
        for name in entries(outDir) where name.hasPrefix("checkpoint-") {
            let folder = outDir.appendingPathComponent(name)
            let state = try? JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("state.json"))) as? [String: Any]
            let step = state?["completedSteps"] as? Int
            XCTAssertEqual(step.map { "checkpoint-\($0)" }, name, "\(name) is torn: \(entries(folder))", file: file, line: line)
            for part in ["parameters.safetensors", "optimizer.safetensors", "model/model.safetensors", "model/config.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent(part).path), "\(name) lacks \(part)", file: file, line: line)
            }
            if let step { steps.append(step) }
        }
        return steps
    }

    func testKillNineDuringTrainRunLosesAtMostSaveEverySteps() throws {
        let work = try temporaryDirectory()
        let data = try dataset(in: work)
        let outDir = work.appendingPathComponent("run")
        var rng = SplitMix64(seed: 14)  // the kill moments, the same on every run
        var observed = 0, temporariesSeen = 0, kills = 0
        let rounds = 8
        for round in 0...rounds {
            let d = try DaemonProcess()
            XCTAssertNotNil(d.initialize())
            let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
            let jobId: String
            var step = 0
            if round == 0 {
                jobId = try XCTUnwrap(try result(d, 1, "train/create", #"{"modelId":"\#(modelId)","freeze":["lm_head"],"dataset":{"path":"\#(data.path)","format":"tokens"},"seqLen":16,"microBatch":2,"steps":100000,"lr":0.001,"seed":3}"#)["jobId"]?.stringValue)
            } else {
                // What the killed daemon left: every visible checkpoint whole.
                let onDisk = try completeCheckpoints(outDir)
                temporariesSeen += entries(outDir).filter { $0.hasPrefix(".loramd-tmp-") }.count
                let resumed = try result(d, 1, "train/resume", #"{"path":"\#(outDir.path)"}"#)
                step = Int(try XCTUnwrap(resumed["step"]?.intValue))
                XCTAssertEqual(step, onDisk.max(), "the newest complete checkpoint of \(onDisk)")
                XCTAssertEqual(resumed["path"]?.stringValue, outDir.appendingPathComponent("checkpoint-\(step)").path)
                XCTAssertGreaterThanOrEqual(step, observed - saveEvery, "at most saveEvery steps lost (the last step seen before the kill was \(observed))")
                XCTAssertEqual(entries(outDir).filter { $0.hasPrefix(".loramd-tmp-") }, [], "resume removes the killed daemon's temporaries")
                jobId = try XCTUnwrap(resumed["jobId"]?.stringValue)
                print("kill -9 test: round \(round): last step seen \(observed), resumed from \(step), checkpoints \(onDisk.sorted())")
            }
            guard round < rounds else {
                // The last one resumes and saves again: no temporary stays, the save is whole.
                d.request(2, "train/run", #"{"jobId":"\#(jobId)","outDir":"\#(outDir.path)","saveEvery":\#(saveEvery)}"#)
                let goal = step + 2 * saveEvery
                let deadline = Date(timeIntervalSinceNow: DaemonProcess.hang)
                while !FileManager.default.fileExists(atPath: outDir.appendingPathComponent("checkpoint-\(goal)").path) && Date() < deadline {
                    Thread.sleep(forTimeInterval: 0.02)
                }
                d.notify("$/cancelRequest", #"{"id":2}"#)
                XCTAssertEqual(d.response(id: 2)?["error"]?["code"], .int(-32800))
                XCTAssertEqual(entries(outDir).filter { $0.hasPrefix(".") }, [])
                _ = try completeCheckpoints(outDir)
                d.closeInput()
                _ = d.exitCode()
                break
            }
            d.request(2, "train/run", #"{"jobId":"\#(jobId)","outDir":"\#(outDir.path)","saveEvery":\#(saveEvery),"workDoneToken":"r"}"#)
            // The first run is killed only after its first checkpoint: before it there is nothing to resume.
            let started = round == 0 ? saveEvery : 1
            XCTAssertTrue(d.wait { $0.contains { ($0["params"]?["value"]?["step"]?.intValue ?? 0) >= started } }, "training started")
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.5, using: &rng))
            observed = d.received.compactMap { $0["params"]?["value"]?["step"]?.intValue }.map(Int.init).max() ?? 0
            XCTAssertEqual(kill(d.process.processIdentifier, SIGKILL), 0)
            d.process.waitUntilExit()
            kills += 1
        }
        print("kill -9 test: \(kills) kills, \(temporariesSeen) temporaries left by them and removed on resume")
    }

    /// Torn folders (as an older daemon, or another tool, left them) are passed over; the newest
    /// complete one wins; with none complete the error says what is wrong with each.
    func testResumeOfAnOutDirPassesOverTornCheckpoints() throws {
        let work = try temporaryDirectory()
        let data = try dataset(in: work)
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let modelId = try XCTUnwrap(d.loadModel(Self.tiny))
        let jobId = try XCTUnwrap(try result(d, 1, "train/create", #"{"modelId":"\#(modelId)","freeze":["lm_head"],"dataset":{"path":"\#(data.path)","format":"tokens"},"seqLen":16,"microBatch":2,"steps":10,"lr":0.001}"#)["jobId"]?.stringValue)
        let outDir = work.appendingPathComponent("run")
        _ = try result(d, 2, "train/step", #"{"jobId":"\#(jobId)","steps":2}"#)
        _ = try result(d, 3, "train/save", #"{"jobId":"\#(jobId)","path":"\#(outDir.path)/checkpoint-2"}"#)
        let manager = FileManager.default
        // checkpoint-4 without its state, final with a state that does not parse, checkpoint-6 with a truncated optimizer file.
        try manager.createDirectory(at: outDir.appendingPathComponent("checkpoint-4"), withIntermediateDirectories: true)
        try manager.copyItem(at: outDir.appendingPathComponent("checkpoint-2/parameters.safetensors"), to: outDir.appendingPathComponent("checkpoint-4/parameters.safetensors"))
        try manager.copyItem(at: outDir.appendingPathComponent("checkpoint-2"), to: outDir.appendingPathComponent("final"))
        try Data("{".utf8).write(to: outDir.appendingPathComponent("final/state.json"))
        try manager.copyItem(at: outDir.appendingPathComponent("checkpoint-2"), to: outDir.appendingPathComponent("checkpoint-6"))
        let state = try String(contentsOf: outDir.appendingPathComponent("checkpoint-6/state.json"), encoding: .utf8)
        XCTAssertTrue(state.contains("\"completedSteps\" : 2"), state)
        try Data(state.replacingOccurrences(of: "\"completedSteps\" : 2", with: "\"completedSteps\" : 6").utf8).write(to: outDir.appendingPathComponent("checkpoint-6/state.json"))
        let optimizer = outDir.appendingPathComponent("checkpoint-6/optimizer.safetensors")
        try Data(try Data(contentsOf: optimizer).prefix(100)).write(to: optimizer)
        let resumed = try result(d, 4, "train/resume", #"{"path":"\#(outDir.path)"}"#)
        XCTAssertEqual(resumed["step"], .int(2))
        XCTAssertEqual(resumed["path"]?.stringValue, outDir.appendingPathComponent("checkpoint-2").path)

        try manager.removeItem(at: outDir.appendingPathComponent("checkpoint-2"))
        let failure = error(d, 5, "train/resume", #"{"path":"\#(outDir.path)"}"#)
        XCTAssertEqual(failure?["code"], .int(-31010))
        let problem = failure?["data"]?["problem"]?.stringValue ?? ""
        for name in ["checkpoint-4", "checkpoint-6", "final"] { XCTAssertTrue(problem.contains(name), "\(name) in \(problem)") }
        d.closeInput()
        _ = d.exitCode()
    }

    func testConcurrentSavesToOnePathLeaveOneWholeModel() throws {
        let work = try temporaryDirectory()
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let a = try XCTUnwrap(d.loadModel(Self.tiny, id: 1))
        let b = try XCTUnwrap(try result(d, 2, "model/load", #"{"path":"\#(Self.tiny)","dtype":"bf16"}"#)["modelId"]?.stringValue)
        func files(_ folder: URL) throws -> [String: Data] {
            Dictionary(uniqueKeysWithValues: try entries(folder).map { ($0, try Data(contentsOf: folder.appendingPathComponent($0))) })
        }
        var references: [[String: Data]] = []
        for (i, id) in [a, b].enumerated() {
            let folder = work.appendingPathComponent("reference-\(i)")
            _ = try result(d, 3 + i, "model/save", #"{"modelId":"\#(id)","path":"\#(folder.path)"}"#)
            references.append(try files(folder))
        }
        XCTAssertNotEqual(references[0], references[1])
        let target = work.appendingPathComponent("shared")
        for round in 0..<6 {
            let first = 10 + 10 * round
            let order: [String] = round % 2 == 0 ? [a, b] : [b, a]
            for (i, id) in order.enumerated() {
                d.request(first + i, "model/save", #"{"modelId":"\#(id)","path":"\#(target.path)"}"#)
            }
            for i in 0..<2 { XCTAssertNotNil(d.response(id: first + i)?["result"], "\(d.received.last ?? .null)") }
            let saved = try files(target)
            XCTAssertTrue(saved == references[0] || saved == references[1], "round \(round): a mix of two models: \(saved.keys.sorted())")
        }
        XCTAssertEqual(entries(work).filter { $0.hasPrefix(".") }, [])
        d.closeInput()
        _ = d.exitCode()
    }
}
