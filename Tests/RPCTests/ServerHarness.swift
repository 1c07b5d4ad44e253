import Foundation
import XCTest
@testable import RPC

/// An RPCServer in process: bytes in through `receive`, framed output parsed back into messages.
/// The router serves a few methods that exercise the machinery without any model.
final class ServerHarness {
    let sink = BufferSink()
    let server: RPCServer
    private var framer = MessageFramer()
    private(set) var received: [JSONValue] = []
    private let exitLock = NSCondition()
    private var exitCode: Int32?

    struct SleepParams: Decodable { var ms: Int }
    struct Typed: Decodable {
        var name: String
        var count: Int
        var nested: Nested?
        struct Nested: Decodable { var values: [Int] }
    }

    /// What the `busy` handler saw: how many ran at once at most, and which ids it ran.
    final class Occupancy: @unchecked Sendable {
        private let lock = NSLock()
        private var now = 0
        private(set) var peak = 0
        private(set) var started: Set<Int64> = []
        func enter(_ id: Int64) { lock.lock(); now += 1; peak = max(peak, now); started.insert(id); lock.unlock() }
        func leave() { lock.lock(); now -= 1; lock.unlock() }
        var peakNow: Int { lock.lock(); defer { lock.unlock() }; return peak }
        func ran(_ id: Int64) -> Bool { lock.lock(); defer { lock.unlock() }; return started.contains(id) }
    }
    let occupancy = Occupancy()

    init(progressInterval: TimeInterval = 0.05, maxContentLength: Int = MessageFramer.defaultMaxContentLength,
         maxConcurrentRequests: Int = RPCServer.defaultConcurrency, maxQuickRequests: Int = 4) {
        let router = Router()
        router.register("quickEcho", lane: .quick) { (params: JSONValue, _) in params }
        router.register("busy") { [occupancy] (params: SleepParams, context) -> JSONValue in
            guard case .number(let id) = context.id else { return .null }
            occupancy.enter(id)
            defer { occupancy.leave() }
            try context.cancellation.sleep(seconds: Double(params.ms) / 1000)
            return .int(id)
        }
        router.register("initialize") { (_: JSONValue, _) -> JSONValue in .object([("capabilities", .object([]))]) }
        router.register("echo") { (params: JSONValue, _) in params }
        router.register("typed") { (params: Typed, _) -> JSONValue in .string("\(params.name):\(params.count)") }
        router.register("fail") { (_: NoParams, _) -> JSONValue in throw NSError(domain: "test", code: 7) }
        router.register("sleep") { (params: SleepParams, context) -> JSONValue in
            var slept = 0
            while slept < params.ms {
                try context.cancellation.sleep(seconds: 0.005)
                slept += 5
                context.progress?.report(percentage: Double(slept) * 100 / Double(params.ms), fields: [("text", .string("."))])
            }
            return .int(Int64(slept))
        }
        var options = RPCServer.Options()
        options.progressInterval = progressInterval
        options.maxContentLength = maxContentLength
        options.drainTimeout = 1
        options.maxConcurrentRequests = maxConcurrentRequests
        options.maxQuickRequests = maxQuickRequests
        server = RPCServer(router: router, sink: sink, options: options)
        server.onExit = { [exitLock] code in
            exitLock.lock(); self.exitCode = code; exitLock.broadcast(); exitLock.unlock()
        }
    }

    func send(_ json: String) { server.receive(frame(Array(json.utf8))) }
    func sendRaw(_ bytes: [UInt8]) { server.receive(bytes) }
    func request(_ id: Int, _ method: String, _ params: String? = nil) {
        send(#"{"jsonrpc":"2.0","id":\#(id),"method":"\#(method)""# + (params.map { #","params":\#($0)"# } ?? "") + "}")
    }
    func notify(_ method: String, _ params: String? = nil) {
        send(#"{"jsonrpc":"2.0","method":"\#(method)""# + (params.map { #","params":\#($0)"# } ?? "") + "}")
    }
    func initialize() {
        request(0, "initialize", "{}")
        XCTAssertNotNil(waitForResponse(id: 0)?["result"])
    }

    /// Parses everything written so far into `received`.
    func drain() {
        for event in framer.feed(sink.take()) {
            guard case .message(let body) = event, let value = try? JSONParser.parse(body) else {
                XCTFail("the server wrote a malformed message: \(event)")
                continue
            }
            received.append(value)
        }
    }

    /// How long a wait lasts before the test calls it a hang: waits are about hangs, never speed
    /// (a busy 2-core machine is many times slower than an idle one).
    static let hang: TimeInterval = 600

    /// Waits until `predicate` holds over the received messages.
    @discardableResult
    func wait(timeout: TimeInterval = hang, until predicate: ([JSONValue]) -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            drain()
            if predicate(received) { return true }
            Thread.sleep(forTimeInterval: 0.002)
        }
        drain()
        return predicate(received)
    }

    func waitForResponse(id: Int, timeout: TimeInterval = hang) -> JSONValue? {
        wait(timeout: timeout) { $0.contains { $0["id"] == .int(Int64(id)) } }
        return received.first { $0["id"] == .int(Int64(id)) }
    }

    func errorCode(id: Int) -> Int64? { waitForResponse(id: id)?["error"]?["code"]?.intValue }

    func waitForExit(timeout: TimeInterval = hang) -> Int32? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        exitLock.lock(); defer { exitLock.unlock() }
        while exitCode == nil && exitLock.wait(until: deadline) {}
        return exitCode
    }

    /// Messages that are responses (carry an id and a result or error).
    var responses: [JSONValue] { received.filter { $0["method"] == nil } }
    func notifications(_ method: String) -> [JSONValue] { received.filter { $0["method"] == .string(method) } }
}
