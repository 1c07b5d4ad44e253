import RPC

/// Diagnostic methods, served only with `--debug-methods`: they let clients and tests exercise
/// concurrency, cancellation, progress and logging without loading a model.
extension Daemon {
    struct SleepParams: Decodable {
        var ms: Int
        var workDoneToken: JSONValue?
    }

    struct LogParams: Decodable {
        var message: String
        var type: Int?
    }

    func registerDebug() {
        router.register("debug/echo") { (params: JSONValue, _) in params }

        router.register("debug/sleep") { (params: SleepParams, context) -> JSONValue in
            guard (0...3_600_000).contains(params.ms) else {
                throw RPCError.invalidParams(field: "ms", "must be between 0 and 3600000, got \(params.ms)")
            }
            context.progress?.report(message: "sleeping \(params.ms) ms")
            let slice = 10
            var slept = 0
            while slept < params.ms {
                let step = min(slice, params.ms - slept)
                try context.cancellation.sleep(seconds: Double(step) / 1000)
                slept += step
                context.progress?.report(message: "\(slept) ms", percentage: 100 * Double(slept) / Double(params.ms))
            }
            context.progress?.end(message: "done")
            return .object([("sleptMs", .int(Int64(slept)))])
        }

        router.register("debug/log") { (params: LogParams, context) -> JSONValue in
            let type = RequestContext.LogType(rawValue: params.type ?? 3)
            guard let type else { throw RPCError.invalidParams(field: "type", "must be 1 (error) to 4 (log)") }
            context.log(type, params.message)
            return .null
        }

        router.register("debug/fail") { (_: NoParams, _) -> JSONValue in
            throw DebugFailure()
        }
    }

    struct DebugFailure: Error, CustomStringConvertible {
        var description: String { "debug/fail always fails" }
    }
}
