import Foundation

/// What a handler gets besides its params: who is asking, a way to notice cancellation, progress
/// when the client asked for it, and a line to the client's log window.
public final class RequestContext: @unchecked Sendable {
    public let id: RequestID
    public let method: String
    public let cancellation: CancellationToken
    /// Present when the request's params carried `workDoneToken`.
    public let progress: ProgressReporter?
    private let notifier: (String, JSONValue) -> Void
    private let answerHooks: AnswerHooks

    init(id: RequestID, method: String, cancellation: CancellationToken, progress: ProgressReporter?,
         notifier: @escaping (String, JSONValue) -> Void, answerHooks: AnswerHooks = AnswerHooks()) {
        self.id = id
        self.method = method
        self.cancellation = cancellation
        self.progress = progress
        self.notifier = notifier
        self.answerHooks = answerHooks
    }

    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws RequestCancelled when the request was cancelled; call at every safe point.
    public func checkCancelled() throws { try cancellation.check() }

    public enum LogType: Int { case error = 1, warning = 2, info = 3, log = 4 }

    /// `window/logMessage` to the client.
    public func log(_ type: LogType, _ message: String) {
        notifier("window/logMessage", .object([("type", .int(Int64(type.rawValue))), ("message", .string(message))]))
    }

    /// Runs `body` once the request's answer is written: a reply's memory charge lasts that long.
    public func whenAnswered(_ body: @escaping () -> Void) { answerHooks.add(body) }

    func answered() { answerHooks.run() }

    /// Any other notification to the client.
    public func notify(_ method: String, _ params: JSONValue) { notifier(method, params) }

    /// The same request (id, cancellation, log) without its progress: for a stage of a pipeline
    /// whose progress the pipeline reports itself.
    public func withoutProgress() -> RequestContext {
        RequestContext(id: id, method: method, cancellation: cancellation, progress: nil, notifier: notifier, answerHooks: answerHooks)
    }
}

/// What runs once a request is answered, shared by the contexts of one request.
final class AnswerHooks: @unchecked Sendable {
    private let lock = NSLock()
    private var hooks: [() -> Void] = []

    func add(_ hook: @escaping () -> Void) { lock.lock(); hooks.append(hook); lock.unlock() }

    func run() {
        lock.lock(); let toRun = hooks; hooks = []; lock.unlock()
        toRun.forEach { $0() }
    }
}
