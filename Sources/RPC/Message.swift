/// A JSON-RPC request id: a number or a string, echoed back exactly as it came.
public enum RequestID: Hashable, Sendable, CustomStringConvertible {
    case number(Int64)
    case string(String)

    public init?(_ value: JSONValue) {
        switch value {
        case .int(let i): self = .number(i)
        case .string(let s): self = .string(s)
        default: return nil
        }
    }

    public var json: JSONValue {
        switch self {
        case .number(let i): return .int(i)
        case .string(let s): return .string(s)
        }
    }

    public var description: String {
        switch self {
        case .number(let i): return String(i)
        case .string(let s): return "\"\(s)\""
        }
    }
}

/// One incoming JSON-RPC message, classified. Anything that is not a well-formed request,
/// notification or response is `.invalid`, carrying the id when one could be read so the
/// error answer can name it.
public enum IncomingMessage {
    case request(id: RequestID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    /// A response from the client; the daemon sends no requests of its own, so these are dropped.
    case response(id: JSONValue)
    case invalid(id: RequestID?, RPCError)

    public init(_ value: JSONValue) {
        guard case .object = value else {
            self = .invalid(id: nil, .invalidRequest("expected an object, got \(value.kindName)"))
            return
        }
        let rawID = value["id"]
        let id = rawID.flatMap(RequestID.init)
        guard value["jsonrpc"] == .string("2.0") else {
            self = .invalid(id: id, .invalidRequest("\"jsonrpc\" must be \"2.0\""))
            return
        }
        guard let methodValue = value["method"] else {
            if value["result"] != nil || value["error"] != nil, let rawID {
                self = .response(id: rawID)
            } else {
                self = .invalid(id: id, .invalidRequest("no \"method\""))
            }
            return
        }
        guard case .string(let method) = methodValue else {
            self = .invalid(id: id, .invalidRequest("\"method\" must be a string, got \(methodValue.kindName)"))
            return
        }
        var params = value["params"]
        switch params {
        case .none, .some(.null): params = nil  // "params": null counts as absent
        case .some(.object), .some(.array): break
        case .some(let other):
            self = .invalid(id: id, .invalidRequest("\"params\" must be an object or an array, got \(other.kindName)"))
            return
        }
        guard let rawID else {
            self = .notification(method: method, params: params)
            return
        }
        guard let id else {
            self = .invalid(id: nil, .invalidRequest("\"id\" must be an integer or a string, got \(rawID.kindName)"))
            return
        }
        self = .request(id: id, method: method, params: params)
    }
}

/// Builders for outgoing message bodies.
public enum OutgoingMessage {
    public static func response(id: RequestID?, resultBody: [UInt8]) -> [UInt8] {
        Array(responseParts(id: id, resultBody: resultBody).joined())
    }

    /// A response as three parts (envelope, result, closing brace): the result is never copied.
    public static func responseParts(id: RequestID?, resultBody: [UInt8]) -> [[UInt8]] {
        var head = Array(#"{"jsonrpc":"2.0","id":"#.utf8)
        (id?.json ?? .null).write(to: &head)
        head.append(contentsOf: Array(#","result":"#.utf8))
        return [head, resultBody, [UInt8(ascii: "}")]]
    }

    public static func error(id: RequestID?, _ error: RPCError) -> [UInt8] {
        JSONValue.object([("jsonrpc", .string("2.0")), ("id", id?.json ?? .null), ("error", error.json)]).serialized()
    }

    public static func notification(method: String, params: JSONValue) -> [UInt8] {
        JSONValue.object([("jsonrpc", .string("2.0")), ("method", .string(method)), ("params", params)]).serialized()
    }
}
