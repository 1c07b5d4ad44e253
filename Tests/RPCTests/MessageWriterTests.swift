import Foundation
import XCTest
@testable import RPC

/// MessageWriter: whole messages one at a time; small messages waiting go ahead of large ones
/// waiting (never of the one being written), a large one is passed a bounded number of times; and
/// a message's `beforeLastByte` runs after all its other bytes and before its last one.
final class MessageWriterTests: XCTestCase {
    /// Records each write; the first write of a message whose body starts with `hold` blocks until released.
    final class GatedSink: ByteSink, @unchecked Sendable {
        private let condition = NSCondition()
        private var writes: [[UInt8]] = []
        private var held = true
        private(set) var blocked = false
        let hold: UInt8

        init(hold: UInt8) { self.hold = hold }

        func write(_ bytes: [UInt8]) {
            condition.lock()
            writes.append(bytes)
            if bytes.first == hold {
                blocked = true
                condition.broadcast()
                while held { condition.wait() }
            }
            condition.unlock()
        }

        func waitUntilBlocked() {
            condition.lock(); while !blocked { condition.wait() }; condition.unlock()
        }

        func release() { condition.lock(); held = false; condition.broadcast(); condition.unlock() }

        var all: [UInt8] { condition.lock(); defer { condition.unlock() }; return Array(writes.joined()) }
        var pieces: [[UInt8]] { condition.lock(); defer { condition.unlock() }; return writes }
    }

    func waitUntil(_ condition: () -> Bool) {
        let deadline = Date(timeIntervalSinceNow: 120)
        while !condition() && Date() < deadline { Thread.sleep(forTimeInterval: 0.002) }
        XCTAssertTrue(condition(), "timed out: a hang")
    }

    /// The bodies on the wire, in order.
    func bodies(_ bytes: [UInt8]) -> [[UInt8]] {
        var framer = MessageFramer()
        return framer.feed(bytes).compactMap { if case .message(let body) = $0 { return body } else { return nil } }
    }

    func testSmallMessagesGoAheadOfLargeOnesWaitingButNotOfTheOneBeingWritten() throws {
        let big = MessageWriter.smallMessageBytes + 1
        let sink = GatedSink(hold: UInt8(ascii: "A"))
        let writer = MessageWriter(sink: sink)
        let first = [UInt8](repeating: UInt8(ascii: "A"), count: big)
        let second = [UInt8](repeating: UInt8(ascii: "B"), count: big)
        let small = Array("{\"quick\":1}".utf8)
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { writer.send(parts: [first]) }
        sink.waitUntilBlocked()  // the first large message is being written
        DispatchQueue.global().async(group: group) { writer.send(parts: [second]) }
        waitUntil { writer.waitingCount == 1 }  // the second large one is waiting
        DispatchQueue.global().async(group: group) { writer.send(small) }
        waitUntil { writer.waitingCount == 2 }
        sink.release()
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        XCTAssertEqual(bodies(sink.all), [first, small, second])
    }

    func testALargeMessageIsPassedOnlyABoundedNumberOfTimes() throws {
        let big = MessageWriter.smallMessageBytes + 1
        let sink = GatedSink(hold: UInt8(ascii: "A"))
        let writer = MessageWriter(sink: sink)
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { writer.send(parts: [[UInt8](repeating: UInt8(ascii: "A"), count: big)]) }
        sink.waitUntilBlocked()
        DispatchQueue.global().async(group: group) { writer.send(parts: [[UInt8](repeating: UInt8(ascii: "B"), count: big)]) }
        waitUntil { writer.waitingCount == 1 }
        let smalls = MessageWriter.maxOvertakes * 2
        // Threads of their own: GCD's pool may be smaller than the number of waiting senders.
        for i in 0..<smalls { let t = Thread { writer.send(Array("\(i)".utf8)); group.leave() }; group.enter(); t.start() }
        waitUntil { writer.waitingCount == smalls + 1 }
        sink.release()
        XCTAssertEqual(group.wait(timeout: .now() + 120), .success)
        let order = bodies(sink.all)
        XCTAssertEqual(order.count, smalls + 2)
        let position = try XCTUnwrap(order.firstIndex { $0.first == UInt8(ascii: "B") })
        XCTAssertLessThanOrEqual(position, 1 + MessageWriter.maxOvertakes, "the waiting large message was passed at most maxOvertakes times")
    }

    func testBeforeLastByteRunsBetweenTheRestAndTheLastByte() {
        for body in [Array("{\"a\":1}".utf8), [UInt8](repeating: UInt8(ascii: "x"), count: MessageWriter.smallMessageBytes * 3)] {
            let sink = GatedSink(hold: 0)
            let writer = MessageWriter(sink: sink)
            var seenAtHook: [UInt8] = []
            writer.send(parts: [Array(body.prefix(5)), Array(body.dropFirst(5))]) { seenAtHook = sink.all }
            let wire = sink.all
            XCTAssertEqual(bodies(wire), [body])
            XCTAssertEqual(seenAtHook, Array(wire.dropLast()), "the hook ran with every byte but the last written")
        }
        // A closed writer writes nothing and still runs the hook.
        let writer = MessageWriter(sink: BufferSink())
        writer.close {}
        var ran = false
        writer.send(parts: [Array("{}".utf8)]) { ran = true }
        XCTAssertTrue(ran)
    }
}
