import Foundation

/// Where a reply's parts go, with what runs just before its last byte is written.
typealias Delivery = ([[UInt8]], (() -> Void)?) -> Void

/// The one answer a request gets. The first `send` wins; a second is a bug and is dropped with a
/// line on stderr, so a client never sees two responses for one id. A message goes out as parts
/// whose concatenation is its body, so a large result is written as it is, never copied.
/// `written` (the release of what the reply kept charged) runs before the client can have the
/// whole answer, so a request it sends next never sees the charge.
final class Reply: @unchecked Sendable {
    let id: RequestID?
    private let deliver: Delivery
    private let lock = NSLock()
    private var sent = false

    init(id: RequestID?, deliver: @escaping Delivery) {
        self.id = id
        self.deliver = deliver
    }

    func succeed(resultBody: [UInt8], written: (() -> Void)? = nil) {
        send(OutgoingMessage.responseParts(id: id, resultBody: resultBody), written: written)
    }

    func fail(_ error: RPCError, written: (() -> Void)? = nil) { send([OutgoingMessage.error(id: id, error)], written: written) }

    private func send(_ body: [[UInt8]], written: (() -> Void)?) {
        lock.lock()
        let first = !sent
        sent = true
        lock.unlock()
        if first {
            deliver(body, written)
        } else {
            written?()
            FileHandle.standardError.write(Data("loramd: dropped a second reply to request \(id?.description ?? "null")\n".utf8))
        }
    }
}

/// Gathers the answers to a batch's requests and sends them as one array once all are in.
final class BatchCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var remaining: Int
    private var bodies: [[UInt8]] = []
    private var written: [() -> Void] = []
    private let deliver: ([UInt8], (() -> Void)?) -> Void

    init(expected: Int, deliver: @escaping ([UInt8], (() -> Void)?) -> Void) {
        self.remaining = expected
        self.deliver = deliver
    }

    func add(_ parts: [[UInt8]], written hook: (() -> Void)?) {
        lock.lock()
        bodies.append(Array(parts.joined()))
        if let hook { written.append(hook) }
        remaining -= 1
        let done = remaining == 0
        let hooks = written
        lock.unlock()
        guard done else { return }
        var out: [UInt8] = [UInt8(ascii: "[")]
        for (i, b) in bodies.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: b)
        }
        out.append(UInt8(ascii: "]"))
        deliver(out) { hooks.forEach { $0() } }
    }
}
