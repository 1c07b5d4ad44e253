import Foundation

/// `$/progress` for one request that carried a `workDoneToken`: begin, coalesced reports, end.
///
/// Reports arriving faster than `minimumInterval` are merged into one: numbers and messages keep
/// the latest value, `text` pieces are concatenated, so streamed text is never lost while a fast
/// loop cannot flood the pipe. `end` flushes what is pending first. Everything is emitted under
/// one lock, so the client sees begin, reports and end in order.
public final class ProgressReporter: @unchecked Sendable {
    public let token: JSONValue
    public let minimumInterval: TimeInterval
    private let send: (JSONValue) -> Void
    private let lock = NSLock()
    private static let timerQueue = DispatchQueue(label: "loramd.progress")
    private var begun = false
    private var ended = false
    private var lastSent = Date.distantPast
    private var pending: [(String, JSONValue)]?
    private var flushScheduled = false

    init(token: JSONValue, minimumInterval: TimeInterval, send: @escaping (JSONValue) -> Void) {
        self.token = token
        self.minimumInterval = minimumInterval
        self.send = send
    }

    /// Opens the progress. The RPC layer opens it for every request with a token, titled with
    /// the method; a handler's own `begin` then arrives as a report whose message is its title
    /// (LSP fixes the title at `begin`).
    public func begin(title: String, message: String? = nil, percentage: Double? = nil, cancellable: Bool = true) {
        lock.lock()
        if begun {
            lock.unlock()
            report(message: message.map { "\(title): \($0)" } ?? title, percentage: percentage)
            return
        }
        defer { lock.unlock() }
        beginLocked(title: title, message: message, percentage: percentage, cancellable: cancellable)
    }

    /// `fields` are method-specific members of the report (`step`, `loss`, `text`, ...).
    public func report(message: String? = nil, percentage: Double? = nil, fields: [(String, JSONValue)] = []) {
        var value: [(String, JSONValue)] = fields
        if let message { value.append(("message", .string(message))) }
        if let percentage { value.append(("percentage", Self.percentageValue(percentage))) }
        lock.lock(); defer { lock.unlock() }
        guard !ended else { return }
        // A report without a begin still opens the progress, so clients see a well-formed sequence.
        beginLocked(title: "Working", message: nil, percentage: nil, cancellable: true)
        pending = pending.map { Self.merge($0, value) } ?? value
        let wait = minimumInterval - Date().timeIntervalSince(lastSent)
        if wait <= 0 {
            flushLocked()
        } else if !flushScheduled {
            flushScheduled = true
            Self.timerQueue.asyncAfter(deadline: .now() + wait) { [weak self] in
                guard let self else { return }
                self.lock.lock(); defer { self.lock.unlock() }
                self.flushScheduled = false
                if !self.ended { self.flushLocked() }
            }
        }
    }

    public func end(message: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        guard begun, !ended else { return }
        flushLocked()
        ended = true
        emitLocked(.object(["kind": .string("end"), "message": message.map(JSONValue.string)]))
    }

    private func beginLocked(title: String, message: String?, percentage: Double?, cancellable: Bool) {
        guard !begun else { return }
        begun = true
        emitLocked(.object(["kind": .string("begin"), "title": .string(title), "cancellable": .bool(cancellable),
                            "message": message.map(JSONValue.string), "percentage": percentage.map(Self.percentageValue)]))
    }

    private func flushLocked() {
        guard let fields = pending else { return }
        pending = nil
        lastSent = Date()
        emitLocked(.object([("kind", .string("report"))] + fields))
    }

    private func emitLocked(_ value: JSONValue) {
        send(.object([("token", token), ("value", value)]))
    }

    /// LSP types percentage as an unsigned integer 0…100; clients such as VS Code expect that.
    static func percentageValue(_ percentage: Double) -> JSONValue {
        .int(Int64(max(0, min(100, percentage.isNaN ? 0 : percentage)).rounded(.down)))
    }

    static func merge(_ old: [(String, JSONValue)], _ new: [(String, JSONValue)]) -> [(String, JSONValue)] {
        var merged = old
        for (key, value) in new {
            if let i = merged.firstIndex(where: { $0.0 == key }) {
                if key == "text", case .string(let a) = merged[i].1, case .string(let b) = value {
                    merged[i].1 = .string(a + b)
                } else {
                    merged[i].1 = value
                }
            } else {
                merged.append((key, value))
            }
        }
        return merged
    }
}
