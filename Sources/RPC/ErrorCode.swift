/// The contract's error codes (docs/rpc.md, "Errors"), one static member each.
/// The daemon's own codes sit outside the JSON-RPC (-32099…-32000) and LSP (-32899…-32800)
/// reserved ranges.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let parseError = ErrorCode(rawValue: -32700)
    public static let invalidRequest = ErrorCode(rawValue: -32600)
    public static let methodNotFound = ErrorCode(rawValue: -32601)
    public static let invalidParams = ErrorCode(rawValue: -32602)
    public static let internalError = ErrorCode(rawValue: -32603)
    public static let serverNotInitialized = ErrorCode(rawValue: -32002)
    public static let requestCancelled = ErrorCode(rawValue: -32800)
    public static let notFound = ErrorCode(rawValue: -31001)
    public static let formatError = ErrorCode(rawValue: -31010)
    public static let shapeMismatch = ErrorCode(rawValue: -31011)
    public static let overBudget = ErrorCode(rawValue: -31020)
    public static let ioError = ErrorCode(rawValue: -31030)

    public var name: String {
        switch self {
        case .parseError: return "ParseError"
        case .invalidRequest: return "InvalidRequest"
        case .methodNotFound: return "MethodNotFound"
        case .invalidParams: return "InvalidParams"
        case .internalError: return "InternalError"
        case .serverNotInitialized: return "ServerNotInitialized"
        case .requestCancelled: return "RequestCancelled"
        case .notFound: return "NotFound"
        case .formatError: return "FormatError"
        case .shapeMismatch: return "ShapeMismatch"
        case .overBudget: return "OverBudget"
        case .ioError: return "IOError"
        default: return "Error\(rawValue)"
        }
    }

    public var description: String { "\(name) (\(rawValue))" }
}
