import Foundation
import XCTest
import RPC

/// The real `loramd` executable, spawned with pipes: framed bytes in, parsed messages out.
final class DaemonProcess {
    let process = Process()
    private let stdinPipe = Pipe()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let lock = NSCondition()
    private var messages: [JSONValue] = []
    private var framer = MessageFramer()
    private var stdoutClosed = false

    /// The built `loramd`: $LORAMD, else beside the test bundle, else the package's .build/debug.
    static var executable: URL {
        if let path = ProcessInfo.processInfo.environment["LORAMD"] { return URL(fileURLWithPath: path) }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("loramd")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/loramd")
    }

    init(arguments: [String] = ["--debug-methods"]) throws {
        process.executableURL = Self.executable
        process.arguments = arguments
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        try process.run()
        let handle = stdoutPipe.fileHandleForReading
        Thread { [self] in
            while true {
                let data = handle.availableData
                lock.lock()
                if data.isEmpty { stdoutClosed = true; lock.broadcast(); lock.unlock(); return }
                for event in framer.feed(data) {
                    if case .message(let body) = event, let value = try? JSONParser.parse(body) {
                        messages.append(value)
                    } else {
                        messages.append(.string("MALFORMED OUTPUT \(event)"))
                    }
                }
                lock.broadcast()
                lock.unlock()
            }
        }.start()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    func write(_ bytes: [UInt8]) { try? stdinPipe.fileHandleForWriting.write(contentsOf: Data(bytes)) }
    func send(_ json: String) { write(frame(Array(json.utf8))) }
    func request(_ id: Int, _ method: String, _ params: String? = nil) {
        send(#"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)""# + (params.map { #","params":\#($0)"# } ?? "") + "}")
    }
    func notify(_ method: String, _ params: String? = nil) {
        send(#"{"jsonrpc":"2.0","method":"\#(method)""# + (params.map { #","params":\#($0)"# } ?? "") + "}")
    }
    func closeInput() { try? stdinPipe.fileHandleForWriting.close() }

    var received: [JSONValue] { lock.lock(); defer { lock.unlock() }; return messages }

    /// How long a wait lasts before the test calls it a hang. Waits are about hangs, never speed: a
    /// busy 2-core machine ran one debug training step in 21-23 s where an idle one takes 3 s.
    static let hang: TimeInterval = 600

    @discardableResult
    func wait(timeout: TimeInterval = hang, until predicate: ([JSONValue]) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        lock.lock(); defer { lock.unlock() }
        while !predicate(messages) {
            if !lock.wait(until: deadline) { return predicate(messages) }
        }
        return true
    }

    func response(id: Int, timeout: TimeInterval = hang) -> JSONValue? {
        wait(timeout: timeout) { $0.contains { $0["id"] == .int(Int64(id)) } }
        return received.first { $0["id"] == .int(Int64(id)) }
    }

    func initialize(_ params: String = #"{"processId":null,"clientInfo":{"name":"tests"}}"#) -> JSONValue? {
        request(0, "initialize", params)
        return response(id: 0)?["result"]
    }

    /// Waits for the process to end; nil if it is still running after `timeout`.
    func exitCode(timeout: TimeInterval = hang) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        return process.isRunning ? nil : process.terminationStatus
    }

    var stderrText: String { String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
}
