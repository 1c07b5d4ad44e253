/// What a handler gets besides its params: who is asking, a way to notice cancellation, progress
/// when the client asked for it, and a line to the client's log window.
public final class RequestContext: @unchecked Sendable {
    public let id: RequestID
    public let method: String
    public let cancellation: CancellationToken
    /// Present when the request's params carried `workDoneToken`.
    public let progress: ProgressReporter?
    private let notifier: (String, JSONValue) -> Void

    init(id: RequestID, method: String, cancellation: CancellationToken, progress: ProgressReporter?,
         notifier: @escaping (String, JSONValue) -> Void) {
        self.id = id
        self.method = method
        self.cancellation = cancellation
        self.progress = progress
        self.notifier = notifier
    }

    public var isCancelled: Bool { cancellation.isCancelled }

    /// Throws RequestCancelled when the request was cancelled; call at every safe point.
    public func checkCancelled() throws { try cancellation.check() }

    public enum LogType: Int { case error = 1, warning = 2, info = 3, log = 4 }

    /// `window/logMessage` to the client.
    public func log(_ type: LogType, _ message: String) {
        notifier("window/logMessage", .object([("type", .int(Int64(type.rawValue))), ("message", .string(message))]))
    }

    /// Any other notification to the client.
    public func notify(_ method: String, _ params: JSONValue) { notifier(method, params) }

    /// The same request (id, cancellation, log) without its progress: for a stage of a pipeline
    /// whose progress the pipeline reports itself.
    public func withoutProgress() -> RequestContext {
        RequestContext(id: id, method: method, cancellation: cancellation, progress: nil, notifier: notifier)
    }
}
