import Foundation

/// Where framed messages go: stdout in the daemon, a buffer in tests.
public protocol ByteSink: AnyObject {
    /// Writes all of `bytes` or gives up on a closed peer; never writes part of them and returns.
    func write(_ bytes: [UInt8])
}

/// Frames message bodies and writes each whole, one at a time, so two messages never interleave on
/// the wire however many threads answer at once. Messages waiting for the wire go small first: a
/// quick answer (a listing, an error, a progress report) is not queued behind multi-MB replies
/// that are waiting too, though it still waits for the one being written. A large message is
/// passed by at most `maxOvertakes` small ones, so it is never starved. The sending thread writes
/// its own message and returns once it is written (a slow reader slows its writers, and their
/// bytes stay charged meanwhile).
public final class MessageWriter: @unchecked Sendable {
    /// Bodies up to this size go ahead of larger ones waiting.
    public static let smallMessageBytes = 1 << 16
    static let maxOvertakes = 64

    private let sink: ByteSink
    private let condition = NSCondition()
    private var closed = false
    private var writing = false
    private var waiting: [Ticket] = []

    private final class Ticket {
        let small: Bool
        var overtaken = 0
        init(small: Bool) { self.small = small }
    }

    public init(sink: ByteSink) { self.sink = sink }

    public func send(_ body: [UInt8]) { send(parts: [body]) }

    /// One message whose body is the parts in order, each written as it is (no copy of a large
    /// one). `beforeLastByte` runs once all but the message's last byte are written (or at once
    /// when nothing will be written), so what it releases is released before the client can have
    /// the whole message.
    public func send(parts: [[UInt8]], beforeLastByte: (() -> Void)? = nil) {
        let length = parts.reduce(0) { $0 + $1.count }
        let ticket = Ticket(small: length <= Self.smallMessageBytes)
        condition.lock()
        waiting.append(ticket)
        while !closed && (writing || next() !== ticket) { condition.wait() }
        waiting.removeAll { $0 === ticket }
        guard !closed else {
            condition.unlock()
            beforeLastByte?()
            return
        }
        if ticket.small { for other in waiting where !other.small { other.overtaken += 1 } }
        writing = true
        condition.unlock()
        defer {
            condition.lock()
            writing = false
            condition.broadcast()
            condition.unlock()
        }
        var pieces = parts.count == 1 && ticket.small ? [frame(parts[0])] : [Array("Content-Length: \(length)\r\n\r\n".utf8)] + parts.filter { !$0.isEmpty }
        guard let beforeLastByte else { pieces.forEach(sink.write); return }
        let last = pieces.removeLast()
        pieces.forEach(sink.write)
        sink.write(Array(last.dropLast()))
        beforeLastByte()
        sink.write([last[last.count - 1]])
    }

    /// Messages waiting for their turn (tests).
    var waitingCount: Int { condition.lock(); defer { condition.unlock() }; return waiting.count }

    /// Whose turn it is: the oldest small message, unless a large one has waited long enough.
    private func next() -> Ticket? {
        if let starved = waiting.first(where: { !$0.small && $0.overtaken >= Self.maxOvertakes }) { return starved }
        return waiting.first { $0.small } ?? waiting.first
    }

    /// Stops all further writes and runs `body` (the process exit) with no write in progress.
    public func close(then body: () -> Void) {
        condition.lock()
        closed = true
        condition.broadcast()
        while writing { condition.wait() }
        body()
        condition.unlock()
    }
}

/// Blocking writes to a file descriptor. A closed peer (EPIPE) is remembered and later writes
/// are dropped: the client has gone, and end of input will stop the daemon.
public final class FileDescriptorSink: ByteSink {
    private let fd: Int32
    private var broken = false

    public init(fd: Int32) { self.fd = fd }

    public func write(_ bytes: [UInt8]) {
        guard !broken else { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n > 0 { offset += n; continue }
                if n < 0 && errno == EINTR { continue }
                broken = true
                return
            }
        }
    }
}

/// Collects framed output in memory (tests, in-process use).
public final class BufferSink: ByteSink, @unchecked Sendable {
    private let lock = NSLock()
    private var data: [UInt8] = []

    public init() {}

    public func write(_ bytes: [UInt8]) {
        lock.lock(); data.append(contentsOf: bytes); lock.unlock()
    }

    /// Everything written so far, and clears it.
    public func take() -> [UInt8] {
        lock.lock(); defer { lock.unlock() }
        let out = data
        data = []
        return out
    }
}
