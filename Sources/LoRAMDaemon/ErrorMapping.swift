import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Runtime errors in the contract's terms: a file that cannot be read is FormatError with
/// `file` and `problem`; a request the model cannot serve as asked is InvalidParams.
enum ErrorMapping {
    static func rpc(_ error: Error) -> Error {
        switch error {
        case let error as FormatError:
            return RPCError(.formatError, "Format error: \(error.file): \(error.problem)",
                            hint: "Check \(error.file): \(error.problem).",
                            data: [("file", .string(error.file)), ("problem", .string(error.problem))])
        case let mismatch as AdapterShapeMismatch:
            return RPCError(.shapeMismatch, "Shape mismatch: \(mismatch.description)",
                            hint: "The adapter was made for a model of other shapes; apply it to that model, or make one for this model.",
                            data: [("tensor", .string(mismatch.tensor)),
                                   ("expected", mismatch.expected.map { .array($0.map { .int(Int64($0)) }) } ?? .null),
                                   ("found", .array(mismatch.found.map { .int(Int64($0)) }))])
        case let error as SizeError:
            // Handlers name the request's field where they can; one that escapes still names what it can.
            return invalidParams(error, overflowField: "")
        case let failure as InferenceSession.Failure:
            switch failure {
            case .tokenOutOfRange(let index, _, _):
                return RPCError.invalidParams(field: "ids[\(index)]", failure.description)
            case .contextFull:
                return RPCError.invalidParams(field: "maxTokens", failure.description)
            }
        case let failure as FileWriteError:
            return ioError(failure)
        case let failure as PlanArena.Failure:
            // The plan was charged and fits the budget; the machine had not the memory it promised.
            return RPCError(.overBudget, "Over budget: the machine could not give the step its planned arena (\(failure))",
                            hint: "Free memory on the machine, or lower hbmCapBytes (initialize) to what it really has so plans are refused up front.",
                            data: [("needBytes", .int(Int64(failure.bytes))), ("suggestion", .null)])
        case let conflict as OutputConflict:
            return refusal(conflict, field: "path")
        default:
            // A write that went through Foundation: the environment's failure all the same.
            if let failure = FileWriteError(foundation: error) { return ioError(failure) }
            return error
        }
    }

    /// An output path holding something a save may not replace, blamed on `field`.
    static func refusal(_ conflict: OutputConflict, field: String) -> RPCError {
        RPCError.invalidParams(field: field, conflict.description,
                               hint: "Choose another path, or remove what is there; loramd replaces only an earlier output of the same kind.")
    }

    /// The file system refused a write (disk full, read-only, permissions): the user's
    /// environment, with the path and the OS's reason, never InternalError.
    static func ioError(_ failure: FileWriteError) -> RPCError {
        RPCError(.ioError, "I/O error: \(failure.description)",
                 hint: "The file system refused to \(failure.operation) \(failure.path) (\(failure.reason)); free space, make it writable, or choose another path.",
                 data: [("path", .string(failure.path)), ("reason", .string(failure.reason)), ("errno", .int(Int64(failure.code))),
                        ("operation", .string(failure.operation))])
    }

    /// A size refusal as InvalidParams: a setting past its limit names its request field (`field`
    /// of the planner's name for it: seqLen, microBatch, gradAccum, lora.r, ...); sizes that overflow
    /// only together name `overflowField`, the setting that most often makes them so.
    static func invalidParams(_ error: SizeError, overflowField: String, field: (String) -> String = { $0 }) -> RPCError {
        let hint = "Every size has a limit (docs/rpc.md, Size limits); give a smaller one."
        switch error {
        case .overLimit(let name, _, _): return .invalidParams(field: field(name), error.detail, hint: hint)
        case .overflow: return .invalidParams(field: overflowField, error.detail, hint: hint)
        }
    }

    /// Runs `body`, translating Runtime errors.
    static func translating<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw rpc(error) }
    }
}
