import Foundation

/// The JSON-RPC 2.0 endpoint over LSP framing: bytes in (`receive`), framed messages out
/// (`writer`). It owns the lifecycle, the requests in flight and their cancellation; it knows
/// nothing of what the methods do.
///
/// Requests run on worker threads, so a slow one never blocks the next message; the reader only
/// frames, parses and dispatches. The workers are bounded (a flood of requests queues instead of
/// becoming a thread each), and quick methods have a small pool of their own so long work cannot
/// starve them. `initialize` runs inline, so the messages after it see the server initialized.
public final class RPCServer: @unchecked Sendable {
    public struct Options {
        public var maxContentLength = MessageFramer.defaultMaxContentLength
        /// Coalescing interval of `$/progress` reports.
        public var progressInterval: TimeInterval = 0.2
        /// How long exit and end of input wait for cancelled requests to answer.
        public var drainTimeout: TimeInterval = 2
        public var handlerStackSize = 16 << 20
        /// Requests of the standard lane that run at once; the rest wait in order. Above the core
        /// count, since many requests wait on something (a lock, a cancel) rather than compute.
        public var maxConcurrentRequests = RPCServer.defaultConcurrency
        /// Requests of the quick lane (`RequestLane.quick`) that run at once.
        public var maxQuickRequests = 4
        public init() {}
    }

    /// Twice the cores, at least 8, at most 64.
    public static var defaultConcurrency: Int { min(64, max(8, 2 * ProcessInfo.processInfo.activeProcessorCount)) }

    public let router: Router
    public let writer: MessageWriter
    public let options: Options
    /// Called once, with the exit code, when the connection ends (`exit`, end of input, parent gone).
    public var onExit: (Int32) -> Void = { exit($0) }

    private var framer: MessageFramer
    private let lock = NSCondition()
    private var state = LifecycleState.uninitialized
    private var inFlight: [RequestID: CancellationToken] = [:]
    /// Requests dispatched whose reply is not yet written. An id leaves `inFlight` before its
    /// reply goes out (so the client may reuse it at once); exit waits on this count instead.
    private var unanswered = 0
    private var parentWatcher: ParentProcessWatcher?
    let standardPool: WorkerPool
    let quickPool: WorkerPool

    public init(router: Router, sink: ByteSink, options: Options = Options()) {
        self.router = router
        self.writer = MessageWriter(sink: sink)
        self.options = options
        self.framer = MessageFramer(maxContentLength: options.maxContentLength)
        standardPool = WorkerPool(maxThreads: max(1, options.maxConcurrentRequests), stackSize: options.handlerStackSize)
        quickPool = WorkerPool(maxThreads: max(1, options.maxQuickRequests), stackSize: options.handlerStackSize)
    }

    /// Messages that change the lifecycle: refused inside a batch, whose order is unspecified.
    static let lifecycleMethods: Set<String> = ["initialize", "shutdown", "exit"]

    public var lifecycleState: LifecycleState { lock.lock(); defer { lock.unlock() }; return state }

    /// Requests dispatched and not yet answered.
    public var requestsInFlight: Int { lock.lock(); defer { lock.unlock() }; return unanswered }

    // MARK: Input

    /// Feeds bytes from the client, in any chunking. Called from one reader thread.
    public func receive<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if case .exited = lifecycleState { return }
        for event in framer.feed(bytes) {
            if case .exited = lifecycleState { return }
            switch event {
            case .message(let body): handleBody(body)
            case .malformed(let reason): writer.send(OutgoingMessage.error(id: nil, .parseError(reason)))
            }
        }
    }

    /// End of input: the client is gone. Running work is cancelled and the connection exits.
    public func inputEnded() {
        finish(reason: "end of input")
    }

    func handleBody(_ body: [UInt8]) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch let failure as JSONParser.Failure {
            writer.send(OutgoingMessage.error(id: nil, .parseError("the body is not valid UTF-8 JSON (\(failure))")))
            return
        } catch {
            writer.send(OutgoingMessage.error(id: nil, .parseError("\(error)")))
            return
        }
        if case .array(let entries) = value {
            handleBatch(entries)
        } else {
            handle(IncomingMessage(value), inBatch: false) { [writer] in writer.send(parts: $0, beforeLastByte: $1) }
        }
    }

    private func handleBatch(_ entries: [JSONValue]) {
        guard !entries.isEmpty else {
            writer.send(OutgoingMessage.error(id: nil, .invalidRequest("empty batch")))
            return
        }
        let messages = entries.map(IncomingMessage.init)
        let answered = messages.filter {
            switch $0 {
            case .request, .invalid: return true
            case .notification, .response: return false
            }
        }.count
        let collector = BatchCollector(expected: answered) { [writer] in writer.send(parts: [$0], beforeLastByte: $1) }
        for message in messages { handle(message, inBatch: true, deliver: collector.add) }
    }

    // MARK: Dispatch

    private func handle(_ message: IncomingMessage, inBatch: Bool, deliver: @escaping Delivery) {
        switch message {
        case .invalid(let id, let error):
            deliver([OutgoingMessage.error(id: id, error)], nil)
        case .response:
            log("ignored a response; loramd sends no requests")
        case .notification(let method, let params):
            handleNotification(method, params, inBatch: inBatch)
        case .request(let id, let method, let params):
            let reply = Reply(id: id, deliver: deliver)
            handleRequest(reply: reply, id: id, method: method, params: params, inBatch: inBatch)
        }
    }

    private func handleNotification(_ method: String, _ params: JSONValue?, inBatch: Bool) {
        switch method {
        case "exit":
            if inBatch { log("ignored 'exit' inside a batch"); return }
            finish(reason: "exit")
        case "$/cancelRequest":
            guard let raw = params?["id"], let id = RequestID(raw) else { return }
            lock.lock(); let token = inFlight[id]; lock.unlock()
            token?.cancel()
        default:
            guard lifecycleState == .running || lifecycleState == .shuttingDown else { return }
            router.notificationHandlers[method]?(params)
        }
    }

    private func handleRequest(reply: Reply, id: RequestID, method: String, params: JSONValue?, inBatch: Bool) {
        let current = lifecycleState
        if Self.lifecycleMethods.contains(method), inBatch {
            return reply.fail(.invalidRequest("'\(method)' is not allowed inside a batch",
                                              hint: "Send '\(method)' as a message of its own."))
        }
        if method == "exit" {
            return reply.fail(.invalidRequest("'exit' is a notification, not a request",
                                              hint: "Send 'exit' without an id."))
        }
        switch current {
        case .uninitialized where method != "initialize":
            return reply.fail(.serverNotInitialized)
        case .running where method == "initialize":
            return reply.fail(.invalidRequest("'initialize' was already received", hint: "Send 'initialize' once per connection."))
        case .shuttingDown:
            return reply.fail(.invalidRequest("'\(method)' after 'shutdown'",
                                              hint: "After 'shutdown' only the 'exit' notification is accepted."))
        case .exited:
            return
        default:
            break
        }
        if method == "shutdown" {
            lock.lock(); state = .shuttingDown; lock.unlock()
            return reply.succeed(resultBody: Array("null".utf8))
        }
        guard let handler = router.handler(for: method) else {
            return reply.fail(.methodNotFound(method))
        }
        // Every method takes LSP's workDoneToken; one it cannot report to is refused, not ignored.
        if let token = params?["workDoneToken"], !Self.isProgressToken(token) {
            return reply.fail(.invalidParams(field: "workDoneToken", "must be a string or an integer (LSP's ProgressToken), got \(token.describedForError)"))
        }
        let token = CancellationToken()
        lock.lock()
        if inFlight[id] != nil {
            lock.unlock()
            return reply.fail(.invalidRequest("request id \(id) is already in use by a running request",
                                              hint: "Give every request in flight a distinct id."))
        }
        inFlight[id] = token
        unanswered += 1
        lock.unlock()

        let context = RequestContext(
            id: id, method: method, cancellation: token,
            progress: progressReporter(for: params),
            notifier: { [weak self] method, params in self?.sendNotification(method, params) })
        let execute = { [self] (cancelledBeforeStart: Bool) -> Bool in
            // Every request with a token gets begin … end, whether or not its handler reports.
            context.progress?.begin(title: method)
            let outcome = cancelledBeforeStart ? .failure(.requestCancelled) : Self.run(handler, params: params, context: context)
            context.progress?.end()
            lock.lock()
            inFlight[id] = nil
            lock.unlock()
            defer {
                lock.lock()
                unanswered -= 1
                lock.broadcast()
                lock.unlock()
            }
            // What the handler kept charged for its reply is released just before the reply's last
            // byte, so the client cannot have the reply while usedBytes still counts it.
            switch outcome {
            case .success(let body): reply.succeed(resultBody: body, written: context.answered); return true
            case .failure(let error): reply.fail(error, written: context.answered); return false
            }
        }
        if method == "initialize" {
            // Inline: the reader reads the next message only once the state is `running`.
            guard execute(false) else { return }
            lock.lock(); state = .running; lock.unlock()
            watchParent(params)
        } else {
            let pool = router.lane(for: method) == .quick ? quickPool : standardPool
            // A request cancelled while queued never runs: it leaves the queue and is answered at
            // once by the canceller; one cancelled just as a worker takes it is answered there.
            let job = WorkerPool.Job(name: "loramd \(method) \(id)") { withdrawn in _ = execute(withdrawn || token.isCancelled) }
            // Weak: the token outlives the request, and must not keep its params alive.
            token.onCancel { [weak job] in if let job, pool.withdraw(job) { job.body(true) } }
            pool.submit(job)
        }
    }

    private static func run(_ handler: Router.RequestHandler, params: JSONValue?, context: RequestContext) -> Result<[UInt8], RPCError> {
        do {
            return .success(try handler(params, context))
        } catch let error as RPCError {
            // Whatever a cancelled handler threw on its way out, the client asked for cancellation.
            // A handler's own RequestCancelled (which may carry partial output) is kept as it is.
            if context.isCancelled && error.code != .invalidParams && error.code != .requestCancelled { return .failure(.requestCancelled) }
            return .failure(error)
        } catch {
            if context.isCancelled { return .failure(.requestCancelled) }
            return .failure(.internalError("\(type(of: error)): \(error)"))
        }
    }

    // MARK: Output

    public func sendNotification(_ method: String, _ params: JSONValue) {
        if case .exited = lifecycleState { return }
        writer.send(OutgoingMessage.notification(method: method, params: params))
    }

    /// LSP's ProgressToken: a string or an integer (null stands for none).
    static func isProgressToken(_ value: JSONValue) -> Bool {
        switch value {
        case .string, .null: return true
        default: return value.intValue != nil
        }
    }

    private func progressReporter(for params: JSONValue?) -> ProgressReporter? {
        guard let token = params?["workDoneToken"], token.stringValue != nil || token.intValue != nil else { return nil }
        return ProgressReporter(token: token, minimumInterval: options.progressInterval) { [weak self] value in
            self?.sendNotification("$/progress", value)
        }
    }

    // MARK: Ending

    private func watchParent(_ params: JSONValue?) {
        guard let pid = params?["processId"]?.intValue, pid > 0, pid <= Int64(Int32.max) else { return }
        parentWatcher = ParentProcessWatcher(pid: Int32(pid)) { [weak self] in
            self?.finish(reason: "client process \(pid) is gone")
        }
    }

    /// Cancels everything in flight, waits a little for the cancelled requests to answer, then
    /// exits with 0 after `shutdown` and 1 otherwise.
    private func finish(reason: String) {
        lock.lock()
        if case .exited = state { lock.unlock(); return }
        let code = state.exitCode
        let tokens = Array(inFlight.values)
        lock.unlock()
        // Nothing queued starts now: cancelling a queued request withdraws and answers it.
        standardPool.hold()
        quickPool.hold()
        tokens.forEach { $0.cancel() }
        lock.lock()
        let deadline = Date(timeIntervalSinceNow: options.drainTimeout)
        while unanswered > 0 && lock.wait(until: deadline) {}
        state = .exited(code: code)
        lock.unlock()
        parentWatcher?.stop()
        log("exiting with code \(code): \(reason)")
        writer.close { onExit(code) }
    }

    private func log(_ message: String) {
        FileHandle.standardError.write(Data("loramd: \(message)\n".utf8))
    }
}
