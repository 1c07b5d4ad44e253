import Foundation
import XCTest
import RPC

/// Where saves may write: an earlier output of the same kind (or an empty folder, or nothing) is
/// replaced whole; a folder or file of something else is InvalidParams naming `path` and stays
/// as it was; a file system that refuses the write (full, read-only, a path through a file) is
/// IOError with the path and the OS's reason, and leaves no partial folder.
final class DaemonOutputPathTests: XCTestCase {
    static var tiny: String { DaemonModelTests.tiny }

    func entries(_ url: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }

    func testSavesRefuseWhatIsNotAnEarlierOutputOfTheirKind() throws {
        let work = try temporaryDirectory()
        let (d, model, adapter, job) = try outputSession(work)
        // Someone's folder with a config.json of their own, and a plain file.
        let notes = work.appendingPathComponent("notes")
        try FileManager.default.createDirectory(at: notes, withIntermediateDirectories: true)
        try Data("{\"mine\":true}".utf8).write(to: notes.appendingPathComponent("config.json"))
        let text = work.appendingPathComponent("text.txt")
        try Data("hello".utf8).write(to: text)
        // Earlier outputs of each kind.
        let savedModel = work.appendingPathComponent("model"), savedAdapter = work.appendingPathComponent("adapter")
        let savedState = work.appendingPathComponent("state"), savedGGUF = work.appendingPathComponent("model.gguf")
        _ = try result(d, 4, "model/save", #"{"modelId":"\#(model)","path":"\#(savedModel.path)"}"#)
        _ = try result(d, 5, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(savedAdapter.path)"}"#)
        _ = try result(d, 6, "train/save", #"{"jobId":"\#(job)","path":"\#(savedState.path)"}"#)
        _ = try result(d, 7, "model/save", #"{"modelId":"\#(model)","path":"\#(savedGGUF.path)","format":"gguf"}"#)

        let refused: [(String, String)] = [
            ("model/save", #"{"modelId":"\#(model)","path":"\#(notes.path)"}"#),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(text.path)"}"#),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(savedAdapter.path)"}"#),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(text.path)","format":"gguf"}"#),
            ("model/save", #"{"modelId":"\#(model)","path":"\#(notes.path)","format":"gguf"}"#),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(notes.path)"}"#),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(savedModel.path)"}"#),
            ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(text.path)","format":"gguf"}"#),
            ("train/save", #"{"jobId":"\#(job)","path":"\#(notes.path)"}"#),
            ("train/save", #"{"jobId":"\#(job)","path":"\#(savedModel.path)"}"#),
        ]
        let before = try snapshot(work)
        for (i, (method, params)) in refused.enumerated() {
            let failure = error(d, 20 + i, method, params)
            XCTAssertEqual(failure?["code"], .int(-32602), "\(method) \(params): \(failure ?? .null)")
            XCTAssertEqual(failure?["data"]?["field"], .string("path"), "\(method) \(params)")
        }
        XCTAssertEqual(try snapshot(work), before, "nothing was written or removed")

        // train/run blames its own param.
        let foreign = work.appendingPathComponent("other/checkpoint-1")
        try FileManager.default.createDirectory(at: foreign, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: foreign.appendingPathComponent("notes.txt"))
        let refusedRun = error(d, 40, "train/run", #"{"jobId":"\#(job)","outDir":"\#(work.path)/other","saveEvery":1}"#)
        XCTAssertEqual(refusedRun?["code"], .int(-32602), "\(refusedRun ?? .null)")
        XCTAssertEqual(refusedRun?["data"]?["field"], .string("outDir"))
        XCTAssertTrue(refusedRun?["message"]?.stringValue?.contains("'outDir'") == true, "\(refusedRun ?? .null)")
        XCTAssertEqual(entries(foreign), ["notes.txt"])
        let run = error(d, 41, "train/run", #"{"jobId":"\#(job)","outDir":"\#(work.path)/run","saveEvery":1}"#)
        XCTAssertNil(run, "a fresh outDir is fine: \(run ?? .null)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: work.appendingPathComponent("run/final/state.json").path))

        // Earlier outputs are replaced, each by its own kind.
        try Data("stale".utf8).write(to: savedModel.appendingPathComponent("stale.txt"))
        for (i, (method, params)) in [("model/save", #"{"modelId":"\#(model)","path":"\#(savedModel.path)"}"#),
                                      ("adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(savedAdapter.path)"}"#),
                                      ("train/save", #"{"jobId":"\#(job)","path":"\#(savedState.path)"}"#),
                                      ("model/save", #"{"modelId":"\#(model)","path":"\#(savedGGUF.path)","format":"gguf"}"#)].enumerated() {
            _ = try result(d, 50 + i, method, params)
        }
        XCTAssertFalse(entries(savedModel).contains("stale.txt"), "the folder was replaced whole: \(entries(savedModel))")
        XCTAssertEqual(entries(work).filter { $0.hasPrefix(".") }, [])
        d.closeInput()
        _ = d.exitCode()
    }

    /// Every file under `url`, with its bytes.
    func snapshot(_ url: URL) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: url.path)
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            let path = url.appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return files
    }

    func assertIOError(_ failure: JSONValue?, errno code: Int32, under path: URL, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(failure?["code"], .int(-31030), "\(failure ?? .null)", file: file, line: line)
        XCTAssertEqual(failure?["data"]?["errno"], .int(Int64(code)), "\(failure ?? .null)", file: file, line: line)
        XCTAssertEqual(failure?["data"]?["reason"]?.stringValue, String(cString: strerror(code)), file: file, line: line)
        XCTAssertTrue(failure?["data"]?["path"]?.stringValue?.hasPrefix(path.path) == true, "\(failure ?? .null)", file: file, line: line)
        XCTAssertFalse(failure?["message"]?.stringValue?.contains("NSError") ?? true, file: file, line: line)
    }

    func testAPathThroughAFileIsIOErrorNotInternalError() throws {
        let work = try temporaryDirectory()
        let (d, model, adapter, job) = try outputSession(work)
        let file = work.appendingPathComponent("plain")
        try Data("x".utf8).write(to: file)
        let under = file.appendingPathComponent("sub/out")
        assertIOError(error(d, 10, "model/save", #"{"modelId":"\#(model)","path":"\#(under.path)"}"#), errno: ENOTDIR, under: file)
        assertIOError(error(d, 11, "model/save", #"{"modelId":"\#(model)","path":"\#(under.path).gguf","format":"gguf"}"#), errno: ENOTDIR, under: file)
        assertIOError(error(d, 12, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(under.path)"}"#), errno: ENOTDIR, under: file)
        assertIOError(error(d, 13, "train/save", #"{"jobId":"\#(job)","path":"\#(under.path)"}"#), errno: ENOTDIR, under: file)
        assertIOError(error(d, 14, "train/run", #"{"jobId":"\#(job)","outDir":"\#(under.path)","saveEvery":1}"#), errno: ENOTDIR, under: file)
        XCTAssertEqual(entries(work), ["plain", "train.jsonl"])
        d.closeInput()
        _ = d.exitCode()
    }

    /// A full disk and a read-only one, on a small tmpfs (needs root and mount; skipped otherwise).
    func testDiskFullAndReadOnlyAreIOErrorAndLeaveNoPartialFolder() throws {
        let work = try temporaryDirectory()
        let mountPoint = work.appendingPathComponent("small")
        try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
        guard try DaemonProcess.run(["--version"]).status == 0, Self.mount(["-t", "tmpfs", "-o", "size=256k", "tmpfs", mountPoint.path]) else {
            throw XCTSkip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        }
        addTeardownBlock { _ = Self.umount(mountPoint.path) }
        let (d, model, adapter, job) = try outputSession(work)
        // The tiny model's 632 kB do not fit in 256 kB.
        let full = mountPoint.appendingPathComponent("model")
        assertIOError(error(d, 10, "model/save", #"{"modelId":"\#(model)","path":"\#(full.path)"}"#), errno: ENOSPC, under: full)
        assertIOError(error(d, 11, "model/save", #"{"modelId":"\#(model)","path":"\#(full.path).gguf","format":"gguf","ggufType":"F32"}"#), errno: ENOSPC, under: full)
        XCTAssertEqual(entries(mountPoint), [], "no partial folder, no temporary")
        // A LoRA checkpoint is small: the disk is filled first.
        let filler = mountPoint.appendingPathComponent("filler")
        let fd = open(filler.path, O_WRONLY | O_CREAT, 0o644)
        let page = [UInt8](repeating: 1, count: 4096)
        while write(fd, page, page.count) == page.count {}
        XCTAssertEqual(errno, ENOSPC, "the filler fills the disk")
        close(fd)
        assertIOError(error(d, 12, "train/run", #"{"jobId":"\#(job)","outDir":"\#(mountPoint.path)/run","saveEvery":1}"#), errno: ENOSPC, under: mountPoint.appendingPathComponent("run/checkpoint-1"))
        XCTAssertEqual(entries(mountPoint), ["filler"], "no partial checkpoint, no temporary, no outDir the save created")
        try FileManager.default.removeItem(at: filler)
        // Read-only.
        XCTAssertTrue(Self.mount(["-o", "remount,ro", mountPoint.path]))
        assertIOError(error(d, 20, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(mountPoint.path)/adapter"}"#), errno: EROFS, under: mountPoint)
        assertIOError(error(d, 21, "adapter/save", #"{"adapterId":"\#(adapter)","path":"\#(mountPoint.path)/a.gguf","format":"gguf"}"#), errno: EROFS, under: mountPoint)
        assertIOError(error(d, 22, "train/save", #"{"jobId":"\#(job)","path":"\#(mountPoint.path)/state"}"#), errno: EROFS, under: mountPoint)
        XCTAssertEqual(entries(mountPoint), [])
        // The daemon serves on.
        XCTAssertNotNil(try result(d, 30, "model/list", "{}"))
        d.closeInput()
        _ = d.exitCode()
    }

    /// A folder without write permission (not root: root writes anyway).
    func testAFolderWithoutWritePermissionIsIOError() throws {
        guard geteuid() != 0 else { throw XCTSkip("running as root, where chmod 0555 does not stop writes (the tmpfs and ENOTDIR tests cover IOError)") }
        let work = try temporaryDirectory()
        let (d, model, _, _) = try outputSession(work)
        let locked = work.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        XCTAssertEqual(chmod(locked.path, 0o555), 0)
        addTeardownBlock { chmod(locked.path, 0o755) }
        assertIOError(error(d, 10, "model/save", #"{"modelId":"\#(model)","path":"\#(locked.path)/model"}"#), errno: EACCES, under: locked)
        XCTAssertEqual(entries(locked), [])
        d.closeInput()
        _ = d.exitCode()
    }

    static func mount(_ arguments: [String]) -> Bool { run("/bin/mount", arguments) }
    static func umount(_ path: String) -> Bool { run("/bin/umount", [path]) }

    static func run(_ tool: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
