import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `adapter/create`, `adapter/load`, `adapter/save`, `adapter/merge`, `adapter/unload`, and the
/// lookup `model/forward`, `generate` and `eval/perplexity` use for `adapterId`.
///
/// An adapter belongs to the model it was created or loaded on; applying it to another model is
/// InvalidParams (field `adapterId`). Its fp32 bytes are charged to the budget before they are
/// allocated, and `model/unload` of a model with live adapters is refused (InvalidParams naming
/// them), so an adapter never outlives its model.
extension Daemon {
    struct AdapterCreateParams: Decodable {
        var modelId: String
        @Size<SizeBounds.Rank> var r: Int
        var alpha: Double
        var dropout: Double?
        var targets: [String]
        var seed: UInt64?
        /// loramd's own: B ~ N(0, bInitStd) instead of PEFT's zero (tests, experiments).
        var bInitStd: Double?

        /// The request's own rules (apart from the model).
        func checked() throws -> (dropout: Double, targets: Set<LoRATarget>, b: LoRAAdapter.BInitialization) {
            guard alpha > 0, alpha.isFinite else { throw RPCError.invalidParams(field: "alpha", "must be > 0, got \(alpha)") }
            let dropout = dropout ?? 0
            guard dropout >= 0, dropout < 1 else { throw RPCError.invalidParams(field: "dropout", "must be in [0, 1), got \(dropout)") }
            let targets = try Daemon.targets(targets)
            var b = LoRAAdapter.BInitialization.zero
            if let std = bInitStd {
                guard std >= 0, std.isFinite else { throw RPCError.invalidParams(field: "bInitStd", "must be >= 0, got \(std)") }
                if std > 0 { b = .normal(std: Float(std)) }
            }
            return (dropout, targets, b)
        }
    }

    struct AdapterLoadParams: Decodable {
        var modelId: String
        var path: String
    }

    struct AdapterSaveParams: Decodable {
        var adapterId: String
        var path: String
        /// "peft" (default: a folder with adapter_config.json and adapter_model.safetensors) or
        /// "gguf" (one file llama.cpp loads with its base GGUF).
        var format: String?
    }

    struct AdapterMergeParams: Decodable {
        var modelId: String
        var adapterId: String
    }

    struct AdapterRef: Decodable { var adapterId: String }

    /// Serialises adding adapters and models against `model/unload`, so no adapter is added to a
    /// model that is on its way out.
    static let adapterLifecycle = NSLock()

    static func targets(_ names: [String], field: String = "targets") throws -> Set<LoRATarget> {
        guard !names.isEmpty else { throw RPCError.invalidParams(field: field, "must name at least one linear") }
        return Set(try names.enumerated().map { index, name in
            guard let target = LoRATarget(rawValue: name) else {
                throw RPCError.invalidParams(field: "\(field)[\(index)]", "'\(name)' is not one of \(LoRATarget.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return target
        })
    }

    func registerAdapters() {
        router.register("adapter/create") { [unowned self] (params: AdapterCreateParams, context) in try adapters.create(params, context: context) }

        router.register("adapter/load") { [unowned self] (params: AdapterLoadParams, context) in try adapters.load(params, context: context) }

        router.register("adapter/save") { [unowned self] (params: AdapterSaveParams, context) in try adapters.save(params, context: context) }

        router.register("adapter/merge") { [unowned self] (params: AdapterMergeParams, context) in try adapters.merge(params, context: context) }

        router.register("adapter/unload") { [unowned self] (params: AdapterRef, context) in try adapters.unload(params, context: context) }
    }
}
