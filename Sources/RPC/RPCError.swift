/// An error answer as the contract shapes it: a code, a message, and `data` that always holds a
/// `hint` (one sentence a person can act on) plus whatever else the code calls for (`field` for
/// InvalidParams, `file` for FormatError, `needBytes`/`capBytes` for OverBudget, ...).
public struct RPCError: Error, Equatable, CustomStringConvertible {
    public let code: ErrorCode
    public let message: String
    public private(set) var data: [(String, JSONValue)]

    public init(_ code: ErrorCode, _ message: String, hint: String, data extra: [(String, JSONValue)] = []) {
        self.code = code
        self.message = message
        self.data = [("hint", .string(hint))] + extra.filter { $0.0 != "hint" }
    }

    public var hint: String { dataValue["hint"]?.stringValue ?? "" }
    public var dataValue: JSONValue { .object(data) }
    public var description: String { "\(code): \(message)" }

    public static func == (lhs: RPCError, rhs: RPCError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.dataValue == rhs.dataValue
    }

    /// Adds or replaces one `data` member.
    /// The same error for a field of the part of a request at `prefix` ("train" makes
    /// 'seqLen' 'train.seqLen', in the message, the hint and `data.field`).
    public func within(_ prefix: String) -> RPCError {
        guard let field = dataValue["field"]?.stringValue else { return self }
        let named = field.isEmpty ? prefix : "\(prefix).\(field)"
        var copy = RPCError(code, message.replacingOccurrences(of: "'\(field)'", with: "'\(named)'"),
                            hint: hint.replacingOccurrences(of: "'\(field)'", with: "'\(named)'"), data: data)
        copy = copy.with("field", .string(named))
        return copy
    }

    public func with(_ key: String, _ value: JSONValue) -> RPCError {
        var copy = self
        copy.data.removeAll { $0.0 == key }
        copy.data.append((key, value))
        return copy
    }

    /// The `error` member of a response.
    public var json: JSONValue {
        .object([("code", .int(Int64(code.rawValue))), ("message", .string(message)), ("data", dataValue)])
    }

    // MARK: Factories, one per situation the RPC layer itself meets.

    public static func parseError(_ detail: String) -> RPCError {
        RPCError(.parseError, "Parse error: \(detail)",
                 hint: "Send each message as 'Content-Length: N\\r\\n\\r\\n' followed by N bytes of UTF-8 JSON.")
    }

    public static func invalidRequest(_ detail: String, hint: String? = nil) -> RPCError {
        RPCError(.invalidRequest, "Invalid request: \(detail)",
                 hint: hint ?? "A request is an object with \"jsonrpc\": \"2.0\", a string \"method\", an optional number or string \"id\" and optional object \"params\".")
    }

    public static func methodNotFound(_ method: String) -> RPCError {
        RPCError(.methodNotFound, "Method not found: \(method)",
                 hint: "The result of 'initialize' lists every method under capabilities.methods.",
                 data: [("method", .string(method))])
    }

    public static func invalidParams(field: String, _ detail: String, hint: String? = nil) -> RPCError {
        RPCError(.invalidParams, "Invalid params: \(field.isEmpty ? "params" : "'\(field)'") \(detail)",
                 hint: hint ?? "Check '\(field.isEmpty ? "params" : field)' against the method's params in docs/rpc.md.",
                 data: [("field", .string(field))])
    }

    public static func internalError(_ detail: String) -> RPCError {
        RPCError(.internalError, "Internal error: \(detail)",
                 hint: "This is a bug in loramd; the daemon keeps serving. Please report it with the request that caused it.")
    }

    public static let serverNotInitialized = RPCError(
        .serverNotInitialized, "Server not initialized",
        hint: "Send 'initialize' before any other request.")

    public static let requestCancelled = RPCError(
        .requestCancelled, "Request cancelled",
        hint: "The request was cancelled by $/cancelRequest or because the client went away; its state is consistent.")

    public static func notFound(_ what: String, hint: String) -> RPCError {
        RPCError(.notFound, "Not found: \(what)", hint: hint)
    }
}
