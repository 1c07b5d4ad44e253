import Foundation

/// Cooperative cancellation for one request. `$/cancelRequest` and end of input set it; the
/// handler checks it at its safe points (a step boundary, a generated token) and sleeps on it so
/// that a cancel wakes a waiting handler at once.
public final class CancellationToken: @unchecked Sendable {
    private let condition = NSCondition()
    private var cancelled = false
    private var handlers: [() -> Void] = []

    public init() {}

    public var isCancelled: Bool {
        condition.lock(); defer { condition.unlock() }
        return cancelled
    }

    public func cancel() {
        condition.lock()
        guard !cancelled else { condition.unlock(); return }
        cancelled = true
        let toRun = handlers
        handlers = []
        condition.broadcast()
        condition.unlock()
        toRun.forEach { $0() }
    }

    /// Runs `handler` once when cancelled (at once if already cancelled).
    public func onCancel(_ handler: @escaping () -> Void) {
        condition.lock()
        if cancelled { condition.unlock(); handler(); return }
        handlers.append(handler)
        condition.unlock()
    }

    /// Throws RequestCancelled when cancelled.
    public func check() throws {
        if isCancelled { throw RPCError.requestCancelled }
    }

    /// Waits `seconds` unless cancelled first; throws RequestCancelled in that case.
    public func sleep(seconds: Double) throws {
        let deadline = Date(timeIntervalSinceNow: seconds)
        condition.lock()
        while !cancelled && condition.wait(until: deadline) {}
        let wasCancelled = cancelled
        condition.unlock()
        if wasCancelled { throw RPCError.requestCancelled }
    }
}
