import Foundation
import XCTest
import RPC

/// One rule for every output path (OutputRule): a symbolic link at the path, or at the folder its
/// temporary is made in, is never followed; a FIFO, a device node or a socket is never replaced.
/// Each is InvalidParams naming the request's field, and the link, what it points to and the
/// node stay exactly as they were. The command line's writers (make-model, make-dataset, plan
/// --svg) follow the same rule.
final class DaemonOutputLinkTests: XCTestCase {
    /// What a path is, links not followed: the link's target, or a regular file's bytes.
    enum Entry: Equatable { case link(String), file(Data), folder([String]), other(mode_t) }

    func entry(_ url: URL) -> Entry? {
        var status = stat()
        guard lstat(url.path, &status) == 0 else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFLNK: return .link((try? FileManager.default.destinationOfSymbolicLink(atPath: url.path)) ?? "?")
        case S_IFREG: return .file((try? Data(contentsOf: url)) ?? Data())
        case S_IFDIR: return .folder(((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted())
        case let type: return .other(type)
        }
    }

    func link(_ url: URL, to target: URL) throws {
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: target.path)
    }

    func testLinksAndFIFOsAtOutputPathsAreRefusedAndLeftAsTheyWere() throws {
        let work = try temporaryDirectory()
        let (d, model, adapter, job) = try outputSession(work)
        let data = work.appendingPathComponent("train.jsonl")

        // Someone else's outputs of every kind, in their own folder.
        let other = work.appendingPathComponent("other")
        let theirGGUF = other.appendingPathComponent("someone.gguf"), theirModel = other.appendingPathComponent("model")
        let theirAdapter = other.appendingPathComponent("adapter"), theirState = other.appendingPathComponent("state")
        let theirText = other.appendingPathComponent("notes.txt")
        _ = try result(d, 4, "model/save", #"{"modelId":"\#(model)","path":"\#(theirGGUF.path)","format":"gguf","ggufType":"Q8_0"}"#)
        _ = try result(d, 5, "model/save", #"{"modelId":"\#(model)","path":"\#(theirModel.path)"}"#)
        _ = try result(d, 6, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(theirAdapter.path)"}"#)
        _ = try result(d, 7, "train/save", #"{"jobId":"\#(job)","path":"\#(theirState.path)"}"#)
        try Data("mine".utf8).write(to: theirText)

        // Links planted in a shared folder, a FIFO, and a folder that is itself a link.
        let shared = work.appendingPathComponent("shared")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        let paths: [(String, URL)] = [("gguf", theirGGUF), ("model", theirModel), ("adapter", theirAdapter), ("state", theirState),
                                      ("text", theirText), ("folder", other), ("dangling", work.appendingPathComponent("nothing"))]
        for (name, target) in paths { try link(shared.appendingPathComponent(name), to: target) }
        let fifo = shared.appendingPathComponent("f.gguf")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let linkedFolder = work.appendingPathComponent("linked")
        try link(linkedFolder, to: other)
        // An output folder holding a linked adapter.gguf: the link is refused too, not replaced.
        let outFolder = work.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: outFolder, withIntermediateDirectories: true)
        try link(outFolder.appendingPathComponent("adapter.gguf"), to: theirGGUF)

        func p(_ name: String) -> String { shared.appendingPathComponent(name).path }
        let refused: [(String, String, String)] = [
            ("model/save", #"{"modelId":"\#(model)","path":"\#(p("gguf"))","format":"gguf"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(p("dangling"))","format":"gguf"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(fifo.path)","format":"gguf"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(p("model"))"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(p("folder"))"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(linkedFolder.path)/someone.gguf","format":"gguf"}"#, "path"),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(linkedFolder.path)/new","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(p("gguf"))","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(p("folder"))","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(outFolder.path)","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(fifo.path)","format":"gguf"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(p("adapter"))"}"#, "path"),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(linkedFolder.path)/adapter"}"#, "path"),
            ("train/save", #"{"jobId":"\#(job)","path":"\#(p("state"))"}"#, "path"),
            ("train/save", #"{"jobId":"\#(job)","path":"\#(linkedFolder.path)/state"}"#, "path"),
            ("train/run", #"{"jobId":"\#(job)","outDir":"\#(p("folder"))","saveEvery":1}"#, "outDir"),
            ("train/run", #"{"jobId":"\#(job)","outDir":"\#(theirText.path)","saveEvery":1}"#, "outDir"),
            ("loram/run", #"{"path":"\#(DaemonModelTests.tiny)","outDir":"\#(p("folder"))","train":{"dataset":{"path":"\#(data.path)","format":"tokens"},"seqLen":8,"microBatch":1,"steps":1,"lr":0.01}}"#, "outDir"),
        ]
        let before = paths.map { entry(shared.appendingPathComponent($0.0)) } + paths.map { entry($0.1) }
        let otherBefore = try snapshot(other)
        for (i, (method, params, field)) in refused.enumerated() {
            let failure = error(d, 20 + i, method, params)
            XCTAssertEqual(failure?["code"], .int(-32602), "\(method) \(params): \(failure ?? .null)")
            XCTAssertEqual(failure?["data"]?["field"], .string(field), "\(method) \(params)")
        }
        XCTAssertEqual(paths.map { entry(shared.appendingPathComponent($0.0)) } + paths.map { entry($0.1) }, before, "links and their targets unchanged")
        XCTAssertEqual(try snapshot(other), otherBefore, "someone else's files unchanged")
        XCTAssertEqual(entry(fifo), .other(S_IFIFO), "the FIFO is still a FIFO")
        XCTAssertEqual(entry(outFolder), .folder(["adapter.gguf"]))
        XCTAssertEqual(entry(outFolder.appendingPathComponent("adapter.gguf")), .link(theirGGUF.path))
        XCTAssertEqual(((try? FileManager.default.contentsOfDirectory(atPath: shared.path)) ?? []).filter { $0.hasPrefix(".") }, [], "no temporary left")

        // The same saves to real paths beside them work.
        _ = try result(d, 60, "model/save", #"{"modelId":"\#(model)","path":"\#(shared.path)/mine.gguf","format":"gguf"}"#)
        _ = try result(d, 61, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(shared.path)/mine-adapter.gguf","format":"gguf"}"#)
        d.closeInput()
        _ = d.exitCode()
    }

    /// A character device at a GGUF output path (a twin of /dev/null made in a scratch folder:
    /// needs CAP_MKNOD, which root in CI has) is refused and stays a device.
    func testADeviceNodeAtAnOutputPathIsRefused() throws {
        let work = try temporaryDirectory()
        let device = work.appendingPathComponent("null.gguf")
        // makedev(1, 3), which Swift does not import.
        guard mknod(device.path, S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0 else {
            throw XCTSkip("mknod needs CAP_MKNOD (errno \(errno)); the FIFO test covers the rule for other nodes")
        }
        let d = try DaemonProcess()
        XCTAssertNotNil(d.initialize())
        let model = try XCTUnwrap(d.loadModel(DaemonModelTests.tiny, id: 1))
        let adapter = try XCTUnwrap(try result(d, 2, "adapter/create", #"{"modelId":"\#(model)","r":2,"alpha":4,"targets":["q_proj"]}"#)["adapterId"]?.stringValue)
        for (i, (method, params)) in [("model/save", #"{"modelId":"\#(model)","path":"\#(device.path)","format":"gguf"}"#),
                                      ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(device.path)","format":"gguf"}"#),
                                      ("model/save", #"{"modelId":"\#(model)","path":"\#(device.path)"}"#)].enumerated() {
            let failure = error(d, 10 + i, method, params)
            XCTAssertEqual(failure?["code"], .int(-32602), "\(method): \(failure ?? .null)")
            XCTAssertTrue(failure?["message"]?.stringValue?.contains("character device") == true, "\(failure ?? .null)")
        }
        XCTAssertEqual(entry(device), .other(S_IFCHR))
        d.closeInput()
        _ = d.exitCode()
    }

    func testTheCommandLinesWritersRefuseLinks() throws {
        let work = try temporaryDirectory()
        let target = work.appendingPathComponent("someone.txt")
        try Data("mine".utf8).write(to: target)
        let planted = work.appendingPathComponent("planted")
        try link(planted, to: target)
        for arguments in [["make-model", "--gguf", planted.path], ["make-model", "--out", planted.path],
                          ["make-dataset", "--out", planted.path], ["plan", "--preset", "llama-2-7b", "--svg", planted.path]] {
            let (status, output) = try DaemonProcess.run(arguments)
            XCTAssertEqual(status, 1, "\(arguments): \(output)")
            XCTAssertTrue(output.contains("symbolic link"), "\(arguments): \(output)")
        }
        XCTAssertEqual(entry(planted), .link(target.path))
        XCTAssertEqual(entry(target), .file(Data("mine".utf8)))
    }

    /// Every regular file under `url` (links not followed), with its bytes.
    func snapshot(_ url: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: url.path)
        while let name = enumerator?.nextObject() as? String {
            let path = url.appendingPathComponent(name)
            if case .file(let bytes)? = entry(path) { files[name] = bytes }
        }
        return files
    }
}
