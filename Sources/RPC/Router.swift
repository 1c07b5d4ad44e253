/// The table of methods the daemon serves. Handlers are typed: params decode into a Swift type
/// (a missing or ill-typed field becomes InvalidParams naming it) and results encode from one.
/// Handlers run on a worker thread of their lane and may block; they check `context` for cancellation.
public final class Router {
    typealias RequestHandler = (JSONValue?, RequestContext) throws -> [UInt8]
    typealias NotificationHandler = (JSONValue?) -> Void

    private(set) var requestHandlers: [String: RequestHandler] = [:]
    private(set) var notificationHandlers: [String: NotificationHandler] = [:]
    private(set) var lanes: [String: RequestLane] = [:]

    public init() {}

    /// `lane: .quick` for a method that answers from memory at once (a listing, a plan), so it
    /// still answers while every standard worker is busy with long work.
    public func register<Params: Decodable, Result: Encodable>(
        _ method: String, lane: RequestLane = .standard, _ handler: @escaping (Params, RequestContext) throws -> Result
    ) {
        precondition(requestHandlers[method] == nil, "\(method) registered twice")
        lanes[method] = lane
        requestHandlers[method] = { params, context in
            let decoded = try ParamsCoding.decode(Params.self, from: params)
            return try ParamsCoding.encode(try handler(decoded, context))
        }
    }

    /// Notifications the daemon acts on; any other notification is ignored, as the contract says.
    public func onNotification<Params: Decodable>(_ method: String, _ handler: @escaping (Params) -> Void) {
        notificationHandlers[method] = { params in
            if let decoded = try? ParamsCoding.decode(Params.self, from: params) { handler(decoded) }
        }
    }

    /// Requests the RPC layer answers itself, before any handler.
    static let builtinMethods = ["shutdown"]

    /// Every request method, sorted: what `initialize` lists under capabilities.methods.
    public var methods: [String] { (Array(requestHandlers.keys) + Self.builtinMethods).sorted() }

    func handler(for method: String) -> RequestHandler? { requestHandlers[method] }

    func lane(for method: String) -> RequestLane { lanes[method] ?? .standard }
}

/// Which of the server's worker pools runs a method's requests.
public enum RequestLane: Sendable {
    /// The bounded pool every long method shares.
    case standard
    /// A small pool of its own for methods that never run long.
    case quick
}

/// Params of a method that takes none; any params sent are ignored.
public struct NoParams: Decodable {
    public init() {}
    public init(from decoder: Decoder) throws {}
}
