/// Incremental reader of the LSP base protocol: bytes in, whole message bodies out, in any
/// chunking. Each message is a header block (`Content-Length: N` required, `Content-Type`
/// optional, names case-insensitive, lines ending in CRLF, a blank line last) and N bytes.
///
/// It never gives up on the stream. A malformed header yields a `.malformed` event and the
/// framer resynchronises on the next line that starts with `Content-Length:`. A body longer than
/// `maxContentLength` yields `.malformed` and is skipped as it arrives, never buffered.
public struct MessageFramer {
    public enum Event: Equatable {
        case message([UInt8])
        case malformed(String)
    }

    public static let defaultMaxContentLength = 256 << 20
    /// A header block longer than this is garbage, not a header.
    public static let maxHeaderBytes = 16 << 10

    public let maxContentLength: Int

    private enum State: Equatable {
        case header
        case body(length: Int)
        case skipping(remaining: Int)
        case resynchronising
    }

    private var state = State.header
    private var buffer: [UInt8] = []
    private var start = 0  // bytes before `start` are consumed

    public init(maxContentLength: Int = MessageFramer.defaultMaxContentLength) {
        self.maxContentLength = maxContentLength
    }

    /// Bytes received but not yet part of an emitted message.
    public var pendingByteCount: Int { buffer.count - start }

    /// True when the framer is between messages (nothing partial is buffered).
    public var isIdle: Bool { state == .header && pendingByteCount == 0 }

    public mutating func feed<Bytes: Collection>(_ bytes: Bytes) -> [Event] where Bytes.Element == UInt8 {
        var events: [Event] = []
        if case .skipping(let remaining) = state {
            // Drop skipped bytes before they are ever copied into the buffer.
            let dropped = Swift.min(remaining, bytes.count)
            state = remaining - dropped == 0 ? .header : .skipping(remaining: remaining - dropped)
            buffer.append(contentsOf: bytes.dropFirst(dropped))
        } else {
            buffer.append(contentsOf: bytes)
        }
        while let event = step() {
            if let event { events.append(event) }
        }
        compact()
        return events
    }

    /// One transition: nil when more bytes are needed, `.some(nil)` when the state moved on
    /// without an event.
    private mutating func step() -> Event?? {
        switch state {
        case .header:
            return readHeader()
        case .body(let length):
            guard pendingByteCount >= length else { return nil }
            let body = Array(buffer[start..<(start + length)])
            start += length
            state = .header
            return .some(.message(body))
        case .skipping(let remaining):
            guard pendingByteCount > 0 else { return nil }
            let dropped = Swift.min(remaining, pendingByteCount)
            start += dropped
            state = remaining == dropped ? .header : .skipping(remaining: remaining - dropped)
            return .some(nil)
        case .resynchronising:
            if let found = Self.findHeaderStart(in: buffer, from: start) {
                start = found
                state = .header
                return .some(nil)
            }
            // Keep a tail that might be the beginning of a split "Content-Length:".
            let keep = Swift.min(pendingByteCount, Self.contentLengthName.count + 1)
            start = buffer.count - keep
            return nil
        }
    }

    private mutating func readHeader() -> Event?? {
        guard let end = Self.findHeaderEnd(in: buffer, from: start) else {
            if pendingByteCount > Self.maxHeaderBytes {
                return fail("header block longer than \(Self.maxHeaderBytes) bytes without a blank line",
                            resumeAt: start + 1)
            }
            return nil
        }
        let block = buffer[start..<end]
        let blockStart = start
        start = end + 4
        switch Self.parseHeader(block) {
        case .failure(.missingContentLength):
            // Junk glued to a real header ("garbageContent-Length: 2") lands here: rescan the
            // block itself, past its first byte, for the header it hides.
            return fail(HeaderError.missingContentLength.description, resumeAt: blockStart + 1)
        case .failure(let error):
            return fail(error.description, resumeAt: start)
        case .success(let length) where length > maxContentLength:
            state = .skipping(remaining: length)
            return .some(.malformed("Content-Length \(length) exceeds the limit of \(maxContentLength) bytes; the body is skipped"))
        case .success(let length):
            state = .body(length: length)
            return .some(nil)
        }
    }

    /// Reports `reason` and searches for the next header from `resumeAt`, which always lies past
    /// the failed header's first byte, so the same bad position is never found twice.
    private mutating func fail(_ reason: String, resumeAt: Int) -> Event?? {
        state = .resynchronising
        start = Swift.min(resumeAt, buffer.count)
        return .some(.malformed(reason))
    }

    private mutating func compact() {
        if start > 0 && (start == buffer.count || start > 1 << 16) {
            buffer.removeFirst(start)
            start = 0
        }
    }

    // MARK: Pure helpers

    static let contentLengthName = Array("content-length".utf8)

    enum HeaderError: Error, Equatable, CustomStringConvertible {
        case missingContentLength
        case invalid(String)
        var description: String {
            switch self {
            case .missingContentLength: return "header has no Content-Length"
            case .invalid(let reason): return reason
            }
        }
    }

    /// Parses a header block (without its terminating blank line) into the content length.
    static func parseHeader(_ block: ArraySlice<UInt8>) -> Result<Int, HeaderError> {
        var contentLength: Int?
        for rawLine in block.split(separator: 0x0A, omittingEmptySubsequences: false) {
            var line = rawLine
            guard line.last == 0x0D || line.endIndex == block.endIndex else {
                return .failure(.invalid("header line not terminated by CRLF"))
            }
            if line.last == 0x0D { line = line.dropLast() }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(.invalid("header line without ':' (\(printable(line)))"))
            }
            let name = line[line.startIndex..<colon]
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingSpaces()
            guard name.count == contentLengthName.count,
                  zip(name, contentLengthName).allSatisfy({ lowercase($0) == $1 }) else {
                continue  // Content-Type and unknown headers carry nothing we need.
            }
            guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return .failure(.invalid("Content-Length is not a non-negative integer: '\(value.prefix(40))'"))
            }
            guard let length = Int(value) else {
                return .failure(.invalid("Content-Length \(value.prefix(40)) is too large"))
            }
            if let previous = contentLength, previous != length {
                return .failure(.invalid("two different Content-Length headers"))
            }
            contentLength = length
        }
        guard let length = contentLength else { return .failure(.missingContentLength) }
        return .success(length)
    }

    /// Index of the CRLFCRLF that ends the header block starting at `from`.
    static func findHeaderEnd(in bytes: [UInt8], from: Int) -> Int? {
        var i = from
        while i + 3 < bytes.count {
            if bytes[i] == 0x0D && bytes[i + 1] == 0x0A && bytes[i + 2] == 0x0D && bytes[i + 3] == 0x0A { return i }
            i += 1
        }
        return nil
    }

    /// Position of the next "Content-Length:" (any case) at or after `from`.
    static func findHeaderStart(in bytes: [UInt8], from: Int) -> Int? {
        var i = from
        let n = contentLengthName.count
        while i + n < bytes.count {
            if bytes[i + n] == UInt8(ascii: ":"),
               (0..<n).allSatisfy({ lowercase(bytes[i + $0]) == contentLengthName[$0] }) { return i }
            i += 1
        }
        return nil
    }

    static func lowercase(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }

    static func printable(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix(40), as: UTF8.self).unicodeScalars
            .map { $0.value >= 0x20 && $0.value < 0x7F ? String($0) : "?" }.joined()
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Frames a body for the wire.
public func frame(_ body: [UInt8]) -> [UInt8] {
    Array("Content-Length: \(body.count)\r\n\r\n".utf8) + body
}
