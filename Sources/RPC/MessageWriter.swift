import Foundation

/// Where framed messages go: stdout in the daemon, a buffer in tests.
public protocol ByteSink: AnyObject {
    /// Writes all of `bytes` or gives up on a closed peer; never writes part of them and returns.
    func write(_ bytes: [UInt8])
}

/// Frames message bodies and writes each whole, under one lock, so two messages never
/// interleave on the wire however many threads answer at once.
public final class MessageWriter: @unchecked Sendable {
    private let sink: ByteSink
    private let lock = NSLock()
    private var closed = false

    public init(sink: ByteSink) { self.sink = sink }

    public func send(_ body: [UInt8]) { send(parts: [body]) }

    /// One message whose body is the parts in order, each written as it is (no copy of a large one).
    public func send(parts: [[UInt8]]) {
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return }
        let length = parts.reduce(0) { $0 + $1.count }
        if parts.count == 1 && length < 1 << 16 { sink.write(frame(parts[0])); return }
        sink.write(Array("Content-Length: \(length)\r\n\r\n".utf8))
        for part in parts where !part.isEmpty { sink.write(part) }
    }

    /// Stops all further writes and runs `body` (the process exit) with no write in progress.
    public func close(then body: () -> Void) {
        lock.lock()
        closed = true
        body()
        lock.unlock()
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
