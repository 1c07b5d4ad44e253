import Foundation
import XCTest
@testable import Runtime

/// Outputs appear whole or not at all: a failed write leaves nothing, a replacement swaps whole
/// folders, concurrent writers never mix, temporaries of dead processes are cleaned up, what is
/// not an earlier output is never replaced, and the file system's refusals are FileWriteError.
final class AtomicDirectoryTests: XCTestCase {
    var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("loramd-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: root)
    }

    func names(_ url: URL) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted() }
    func text(_ url: URL) -> String? { (try? Data(contentsOf: url)).map { String(decoding: $0, as: UTF8.self) } }

    /// A model-shaped folder whose every file says `tag`.
    func writeModel(_ folder: URL, tag: String, extra: [String] = []) throws {
        for name in ["config.json", "model.safetensors"] + extra {
            try AtomicFile.write(Data(tag.utf8), to: folder.appendingPathComponent(name))
        }
    }

    func testAFailedWriteLeavesNoFolderNoTemporaryAndNoCreatedParents() throws {
        struct Boom: Error {}
        let destination = root.appendingPathComponent("a/b/model")
        XCTAssertThrowsError(try AtomicDirectory.write(to: destination, rule: .modelFolder) { folder in
            try writeModel(folder, tag: "half")
            throw Boom()
        }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(names(root), [], "neither the folder, its temporary, nor the parents a/b it created")
    }

    func testReplacingAnEarlierOutputSwapsTheWholeFolder() throws {
        let destination = root.appendingPathComponent("model")
        try AtomicDirectory.write(to: destination, rule: .modelFolder) { try writeModel($0, tag: "old", extra: ["old-only.txt"]) }
        try AtomicDirectory.write(to: destination, rule: .modelFolder) { try writeModel($0, tag: "new") }
        XCTAssertEqual(names(destination), ["config.json", "model.safetensors"], "nothing of the old folder stays")
        XCTAssertEqual(text(destination.appendingPathComponent("model.safetensors")), "new")
        XCTAssertEqual(names(root), ["model"], "the old folder, swapped out, is gone")
    }

    func testWhatIsNotAnEarlierOutputIsRefusedAndKept() throws {
        let notes = root.appendingPathComponent("notes")
        try FileManager.default.createDirectory(at: notes, withIntermediateDirectories: true)
        try Data("{\"mine\":true}".utf8).write(to: notes.appendingPathComponent("config.json"))
        let file = root.appendingPathComponent("file.txt")
        try Data("text".utf8).write(to: file)
        let cases: [(URL, OutputRule)] = [(notes, .modelFolder), (notes, .adapterFolder), (notes, .trainingState), (file, .modelFolder),
                                          (file, .ggufFile), (notes, .ggufFile)]
        for (url, rule) in cases {
            XCTAssertThrowsError(try AtomicDirectory.write(to: url, rule: rule) { try writeModel($0, tag: "x") }, "\(url.lastPathComponent) \(rule)") {
                XCTAssertEqual(($0 as? OutputConflict)?.path, url.path, "\($0)")
            }
        }
        XCTAssertThrowsError(try AtomicFile.write(Data("GGUF".utf8), to: file, rule: .ggufFile)) { XCTAssertTrue($0 is OutputConflict) }
        XCTAssertEqual(text(notes.appendingPathComponent("config.json")), "{\"mine\":true}")
        XCTAssertEqual(text(file), "text")
        // An empty folder, or one holding only temporaries, may be written.
        let empty = root.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty.appendingPathComponent(TemporaryOutput.prefix + "x-\(getpid())-1"), withIntermediateDirectories: true)
        try AtomicDirectory.write(to: empty, rule: .adapterFolder) { try AtomicFile.write(Data(), to: $0.appendingPathComponent("adapter_config.json")) }
        XCTAssertEqual(names(empty), ["adapter_config.json"])
    }

    func testConcurrentWritersToOnePathLeaveOneWriterWholeFolder() throws {
        let destination = root.appendingPathComponent("model")
        let writers = 8
        DispatchQueue.concurrentPerform(iterations: writers * 3) { i in
            try? AtomicDirectory.write(to: destination, rule: .modelFolder) { try writeModel($0, tag: "writer \(i % writers)", extra: ["a", "b", "c"]) }
        }
        let tags = Set(names(destination).map { text(destination.appendingPathComponent($0)) ?? "?" })
        XCTAssertEqual(tags.count, 1, "one writer's files only: \(tags)")
        XCTAssertEqual(names(destination), ["a", "b", "c", "config.json", "model.safetensors"])
        XCTAssertEqual(names(root), ["model"])
    }

    func testStaleTemporariesOfGoneProcessesAreRemovedByTheNextSave() throws {
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier
        let stale = TemporaryOutput.prefix + "checkpoint-4-\(dead)-abc"
        let mine = TemporaryOutput.prefix + "checkpoint-6-\(getpid())-abc"
        // pid 1 lives, and started long before this temporary was made: a live writer's.
        let live = TemporaryOutput.prefix + "checkpoint-8-1-abc"
        // pid 1 again, but the temporary is older than that process: the pid was reused.
        let reused = TemporaryOutput.prefix + "checkpoint-2-1-def"
        for name in [stale, mine, live, reused] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(name).appendingPathComponent("inner"), withIntermediateDirectories: true)
        }
        var times = [timeval(tv_sec: 1000, tv_usec: 0), timeval(tv_sec: 1000, tv_usec: 0)]
        XCTAssertEqual(utimes(root.appendingPathComponent(reused).path, &times), 0)
        try AtomicDirectory.write(to: root.appendingPathComponent("checkpoint-10"), rule: .trainingState) {
            try AtomicFile.write(Data("{}".utf8), to: $0.appendingPathComponent("state.json"))
        }
        XCTAssertEqual(names(root), [live, mine, "checkpoint-10"].sorted())
    }

    func testFileSystemRefusalsAreFileWriteErrorsNamingTheDestination() throws {
        let file = root.appendingPathComponent("plain")
        try Data("x".utf8).write(to: file)
        // A folder asked for under a regular file: ENOTDIR, as root too.
        XCTAssertThrowsError(try AtomicDirectory.write(to: file.appendingPathComponent("sub/model"), rule: .modelFolder) { try writeModel($0, tag: "x") }) {
            let failure = $0 as? FileWriteError
            XCTAssertEqual(failure?.code, ENOTDIR, "\($0)")
            XCTAssertEqual(failure?.path, file.appendingPathComponent("sub").path)
            XCTAssertEqual(failure?.reason, "Not a directory")
        }
        XCTAssertThrowsError(try AtomicFile.write(Data(), to: file.appendingPathComponent("x.gguf"), rule: .ggufFile)) {
            XCTAssertEqual(($0 as? FileWriteError)?.code, ENOTDIR, "\($0)")
        }
        // A name too long for the file system.
        let long = root.appendingPathComponent(String(repeating: "n", count: 300))
        XCTAssertThrowsError(try AtomicDirectory.write(to: long, rule: .modelFolder) { try writeModel($0, tag: "x") }) {
            XCTAssertEqual(($0 as? FileWriteError)?.code, ENAMETOOLONG, "\($0)")
        }
        XCTAssertEqual(names(root), ["plain"])
    }

    /// Writes that still go through Foundation (the command-line tools) read the same.
    func testFoundationWriteErrorsBecomeFileWriteErrors() throws {
        let file = root.appendingPathComponent("plain")
        try Data("x".utf8).write(to: file)
        let target = file.appendingPathComponent("out.json")
        XCTAssertThrowsError(try Data("{}".utf8).write(to: target)) {
            let failure = FileWriteError(foundation: $0)
            XCTAssertEqual(failure?.code, ENOTDIR, "\($0)")
            XCTAssertEqual(failure?.path, target.path)
        }
        XCTAssertNil(FileWriteError(foundation: FormatError(file: "a", "b")))
    }

    func testAFailureInsideTheTemporaryFolderNamesTheDestinationsFile() throws {
        // /dev/full answers every write with ENOSPC; a file inside the folder is linked to it.
        guard FileManager.default.fileExists(atPath: "/dev/full") else { throw XCTSkip("no /dev/full") }
        let destination = root.appendingPathComponent("model")
        XCTAssertThrowsError(try AtomicDirectory.write(to: destination, rule: .modelFolder) { folder in
            let output = FileOutput(fd: open("/dev/full", O_WRONLY), path: folder.appendingPathComponent("model.safetensors").path)
            defer { close(output.fd) }
            try output.write(Data(count: 4096))
        }) {
            let failure = $0 as? FileWriteError
            XCTAssertEqual(failure?.code, ENOSPC, "\($0)")
            XCTAssertEqual(failure?.path, destination.appendingPathComponent("model.safetensors").path)
        }
        XCTAssertEqual(names(root), [])
    }
}
