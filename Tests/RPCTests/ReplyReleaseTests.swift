import Foundation
import XCTest
@testable import RPC

/// What a handler keeps charged for its reply (`whenAnswered`) is released before the reply's last
/// byte is written, so a client that has the whole reply can never see the charge: the sink
/// records, at each write, whether the release has run.
final class ReplyReleaseTests: XCTestCase {
    final class RecordingSink: ByteSink, @unchecked Sendable {
        private let lock = NSLock()
        private(set) var bytes: [UInt8] = []
        /// Per write: the bytes written so far once it is done, and whether the release had run.
        private(set) var writes: [(end: Int, released: Bool)] = []
        var released: () -> Bool = { false }
        func write(_ chunk: [UInt8]) {
            lock.lock(); bytes += chunk; writes.append((bytes.count, released())); lock.unlock()
        }
    }

    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        func set() { lock.lock(); value = true; lock.unlock() }
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    }

    func testTheChargeIsReleasedBeforeTheLastByteOfTheReply() throws {
        for size in [16, 1 << 20] {  // one small write, and a large reply written in parts
            let flag = Flag()
            let router = Router()
            router.register("initialize") { (_: JSONValue, _) -> JSONValue in .object([]) }
            router.register("charged") { (_: NoParams, context) -> JSONValue in
                context.whenAnswered { flag.set() }
                return .string(String(repeating: "x", count: size))
            }
            let sink = RecordingSink()
            sink.released = { flag.isSet }
            let server = RPCServer(router: router, sink: sink)
            server.onExit = { _ in }
            server.receive(frame(Array(#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}"#.utf8)))
            let start = sink.bytes.count
            server.receive(frame(Array(#"{"jsonrpc":"2.0","id":1,"method":"charged"}"#.utf8)))
            let deadline = Date(timeIntervalSinceNow: 120)
            while server.requestsInFlight > 0 && Date() < deadline { Thread.sleep(forTimeInterval: 0.005) }
            XCTAssertEqual(server.requestsInFlight, 0)
            let replyWrites = sink.writes.filter { $0.end > start }
            let last = try XCTUnwrap(replyWrites.last)
            XCTAssertTrue(last.released, "size \(size): the write completing the reply came after the release")
            XCTAssertFalse(try XCTUnwrap(replyWrites.first).released || replyWrites.count < 2,
                           "size \(size): the release came after the rest of the reply (\(replyWrites.count) writes)")
            var framer = MessageFramer()
            let messages = framer.feed(Array(sink.bytes[start...]))
            XCTAssertEqual(messages.count, 1)
        }
    }
}
