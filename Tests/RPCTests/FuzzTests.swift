import Foundation
import XCTest
@testable import RPC

/// Random and mutated byte streams fed to the framer and the whole dispatcher. Whatever comes
/// in, the server must not crash or hang, must write only well-formed messages, must answer no id
/// twice, and must end cleanly at end of input.
///
/// The unit suite runs a fixed seed and a few thousand cases; `scripts/fuzz-rpc` runs longer with
/// LORAMD_FUZZ_CASES and LORAMD_FUZZ_SEED.
final class FuzzTests: XCTestCase {
    static var caseCount: Int { Int(ProcessInfo.processInfo.environment["LORAMD_FUZZ_CASES"] ?? "") ?? 10_000 }
    static var seed: UInt64 { UInt64(ProcessInfo.processInfo.environment["LORAMD_FUZZ_SEED"] ?? "") ?? 0x10_4A_3D }

    /// Valid traffic to mutate: requests, notifications, batches, cancellation, lifecycle.
    static let corpus: [String] = [
        #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null}}"#,
        #"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
        #"{"jsonrpc":"2.0","id":2,"method":"echo","params":{"a":[1,2,{"b":"c"}],"d":1.5e3}}"#,
        #"{"jsonrpc":"2.0","id":"s","method":"sleep","params":{"ms":10}}"#,
        #"{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"s"}}"#,
        #"{"jsonrpc":"2.0","id":3,"method":"typed","params":{"name":"x","count":2,"nested":{"values":[1]}}}"#,
        #"[{"jsonrpc":"2.0","id":4,"method":"echo"},{"jsonrpc":"2.0","method":"n"},5]"#,
        #"{"jsonrpc":"2.0","id":6,"method":"fail"}"#,
        #"{"jsonrpc":"2.0","id":7,"method":"shutdown","params":null}"#,
        #"{"jsonrpc":"2.0","id":8,"method":"sleep","params":{"ms":5,"workDoneToken":9}}"#,
        #"{"jsonrpc":"2.0","method":"exit"}"#,
    ]

    func testRandomAndMutatedStreams() {
        var rng = SplitMix64(seed: Self.seed)
        var messagesWritten = 0
        for index in 0..<Self.caseCount {
            let stream = Self.makeStream(&rng, index: index)
            messagesWritten += Self.run(stream: stream, chunking: &rng, label: "case \(index)")
            if testRun?.failureCount ?? 0 > 0 { return }
        }
        print("fuzz: \(Self.caseCount) cases from seed \(Self.seed), \(messagesWritten) messages written back")
    }

    /// One stream: random bytes, a mutated corpus message, or a frame with a mutated header.
    static func makeStream(_ rng: inout SplitMix64, index: Int) -> [UInt8] {
        var stream: [UInt8] = []
        // Most streams initialize first so the dispatcher's later paths are reached.
        if rng.next() % 4 != 0 { stream += frame(Array(corpus[0].utf8)) }
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            switch rng.next() % 5 {
            case 0:  // pure noise
                stream += (0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1:  // a valid message
                stream += frame(Array(corpus[Int(rng.next() % UInt64(corpus.count))].utf8))
            case 2:  // a mutated body with a correct header
                stream += frame(mutate(Array(corpus[Int(rng.next() % UInt64(corpus.count))].utf8), &rng))
            default:  // a whole framed message mutated (headers included)
                stream += mutate(frame(Array(corpus[Int(rng.next() % UInt64(corpus.count))].utf8)), &rng)
            }
        }
        return stream
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let interesting: [[UInt8]] = [Array("\r\n".utf8), Array("\r\n\r\n".utf8), Array("Content-Length: ".utf8),
                                      Array("99999999999".utf8), Array("-1".utf8), [0xFF], [0xC3], [0x00],
                                      Array("[".utf8), Array("{".utf8), Array("\"".utf8), Array("null".utf8)]
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let position = bytes.isEmpty ? 0 : Int(rng.next() % UInt64(bytes.count))
            switch rng.next() % 5 {
            case 0 where !bytes.isEmpty: bytes[position] ^= UInt8(1 << (rng.next() % 8))
            case 1 where !bytes.isEmpty: bytes.remove(at: position)
            case 2: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: position)
            case 3: bytes.insert(contentsOf: interesting[Int(rng.next() % UInt64(interesting.count))], at: position)
            default:
                if !bytes.isEmpty { bytes.removeSubrange(position..<min(bytes.count, position + Int(rng.next() % 8))) }
            }
        }
        return bytes
    }

    /// Feeds `stream` in random chunks, ends the input, and checks what came out.
    static func run(stream: [UInt8], chunking rng: inout SplitMix64, label: String) -> Int {
        let h = ServerHarness(progressInterval: 0.001)
        var offset = 0
        while offset < stream.count {
            let n = 1 + Int(rng.next() % 64)
            h.sendRaw(Array(stream[offset..<min(stream.count, offset + n)]))
            offset += n
        }
        h.server.inputEnded()
        guard let code = h.waitForExit() else {
            XCTFail("\(label): the server did not end after end of input; stream \(stream)")
            return 0
        }
        XCTAssertTrue(code == 0 || code == 1, label)
        h.drain()
        XCTAssertEqual(h.server.requestsInFlight, 0, "\(label): requests left in flight")
        var answers: [RequestID: Int] = [:]
        for message in h.received {
            let entries: [JSONValue]
            if case .array(let items) = message { entries = items } else { entries = [message] }
            for entry in entries where entry["method"] == nil {
                XCTAssertEqual(entry["jsonrpc"], .string("2.0"), label)
                XCTAssertTrue((entry["result"] != nil) != (entry["error"] != nil), "\(label): \(entry)")
                if let error = entry["error"] {
                    XCTAssertNotNil(error["data"]?["hint"]?.stringValue, "\(label): error without hint \(error)")
                }
                if let raw = entry["id"], let id = RequestID(raw) { answers[id, default: 0] += 1 }
            }
        }
        // Ids repeat across the corpus, so the bound is: never more answers for an id than
        // messages in the stream that carry it.
        for (id, count) in answers {
            XCTAssertLessThanOrEqual(count, occurrences(of: id, in: stream), "\(label): \(count) answers for \(id)")
        }
        return h.received.count
    }

    /// How many times `"id"`, optional whitespace, `:`, optional whitespace and the id appear.
    static func occurrences(of id: RequestID, in stream: [UInt8]) -> Int {
        let key = Array("\"id\"".utf8), value = id.json.serialized()
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        var count = 0
        var i = 0
        while i + key.count <= stream.count {
            defer { i += 1 }
            guard Array(stream[i..<(i + key.count)]) == key else { continue }
            var j = i + key.count
            while j < stream.count && isSpace(stream[j]) { j += 1 }
            guard j < stream.count, stream[j] == UInt8(ascii: ":") else { continue }
            j += 1
            while j < stream.count && isSpace(stream[j]) { j += 1 }
            if j + value.count <= stream.count && Array(stream[j..<(j + value.count)]) == value { count += 1 }
        }
        return count
    }
}

/// A small deterministic generator so every fuzz run is reproducible from its seed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
