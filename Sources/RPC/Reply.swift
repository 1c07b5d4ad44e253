import Foundation

/// The one answer a request gets. The first `send` wins; a second is a bug and is dropped with a
/// line on stderr, so a client never sees two responses for one id. A message goes out as parts
/// whose concatenation is its body, so a large result is written as it is, never copied.
final class Reply: @unchecked Sendable {
    let id: RequestID?
    private let deliver: ([[UInt8]]) -> Void
    private let lock = NSLock()
    private var sent = false

    init(id: RequestID?, deliver: @escaping ([[UInt8]]) -> Void) {
        self.id = id
        self.deliver = deliver
    }

    func succeed(resultBody: [UInt8]) { send(OutgoingMessage.responseParts(id: id, resultBody: resultBody)) }

    func fail(_ error: RPCError) { send([OutgoingMessage.error(id: id, error)]) }

    private func send(_ body: [[UInt8]]) {
        lock.lock()
        let first = !sent
        sent = true
        lock.unlock()
        if first {
            deliver(body)
        } else {
            FileHandle.standardError.write(Data("loramd: dropped a second reply to request \(id?.description ?? "null")\n".utf8))
        }
    }
}

/// Gathers the answers to a batch's requests and sends them as one array once all are in.
final class BatchCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: Int
    private var bodies: [[UInt8]] = []
    private let deliver: ([UInt8]) -> Void

    init(expected: Int, deliver: @escaping ([UInt8]) -> Void) {
        self.remaining = expected
        self.deliver = deliver
    }

    func add(_ parts: [[UInt8]]) {
        lock.lock()
        bodies.append(Array(parts.joined()))
        remaining -= 1
        let done = remaining == 0
        lock.unlock()
        guard done else { return }
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, b) in bodies.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: b)
        }
        out.append(UInt8(ascii: "]"))
        deliver(out)
    }
}
