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
        var r: Int
        var alpha: Double
        var dropout: Double?
        var targets: [String]
        var seed: UInt64?
        /// loramd's own: B ~ N(0, bInitStd) instead of PEFT's zero (tests, experiments).
        var bInitStd: Double?
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

    func loadedAdapter(_ id: String, field: String = "adapterId") throws -> LoadedAdapter { try registry.loadedAdapter(id, field: field) }

    func appliedAdapter(_ adapterId: String?, on loaded: LoadedModel) throws -> LoRAAdapter? { try registry.appliedAdapter(adapterId, on: loaded) }

    /// The live adapters of model `modelId`.
    func adapters(of modelId: String) -> [LoadedAdapter] {
        registry.objects(.adapter).compactMap { $0 as? LoadedAdapter }.filter { $0.modelId == modelId }
    }

    /// Runs `remove` (the unloading of model `modelId`) unless adapters still use the model.
    func removeModelUnlessAdapted(_ modelId: String, _ remove: () -> Void) throws {
        Self.adapterLifecycle.lock(); defer { Self.adapterLifecycle.unlock() }
        let live = adapters(of: modelId).map(\.handle)
        guard live.isEmpty else {
            throw RPCError.invalidParams(field: "modelId", "has live adapters: \(live.joined(separator: ", "))",
                                         hint: "Unload them first with 'adapter/unload' (save them with 'adapter/save' to keep them).")
                .with("adapters", .array(live.map { .string($0) }))
        }
        remove()
    }

    /// Registers `object` unless model `modelId` was unloaded meanwhile.
    func insert(_ object: LiveObject, as kind: ObjectRegistry.Kind, whileModelLives modelId: String) throws {
        try registry.insert(object, as: kind, whileModelLives: modelId)
    }

    func charged<T>(_ bytes: Int, to handle: String, kind: String, _ body: () throws -> T) throws -> T {
        try ledger.charged(bytes, to: handle, kind: kind, body)
    }

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
        router.register("adapter/create") { [unowned self] (params: AdapterCreateParams, context) in try createAdapter(params, context: context) }

        router.register("adapter/load") { [unowned self] (params: AdapterLoadParams, context) in try loadAdapter(params, context: context) }

        router.register("adapter/save") { [unowned self] (params: AdapterSaveParams, context) in try saveAdapter(params, context: context) }

        router.register("adapter/merge") { [unowned self] (params: AdapterMergeParams, context) in try mergeAdapter(params, context: context) }

        router.register("adapter/unload") { [unowned self] (params: AdapterRef, context) in try unloadAdapter(params, context: context) }
    }

    func createAdapter(_ params: AdapterCreateParams, context: RequestContext) throws -> AdapterSummary {
        let loaded = try model(params.modelId)
        guard (1...SizeLimits.loraRank).contains(params.r) else { throw RPCError.invalidParams(field: "r", "must be between 1 and \(SizeLimits.loraRank), got \(params.r)") }
        guard params.alpha > 0, params.alpha.isFinite else { throw RPCError.invalidParams(field: "alpha", "must be > 0, got \(params.alpha)") }
        let dropout = params.dropout ?? 0
        guard dropout >= 0, dropout < 1 else { throw RPCError.invalidParams(field: "dropout", "must be in [0, 1), got \(dropout)") }
        let targets = try Self.targets(params.targets)
        var b = LoRAAdapter.BInitialization.zero
        if let std = params.bInitStd {
            guard std >= 0, std.isFinite else { throw RPCError.invalidParams(field: "bInitStd", "must be >= 0, got \(std)") }
            if std > 0 { b = .normal(std: Float(std)) }
        }
        let config = loaded.model.config
        let handle = registry.newHandle(.adapter)
        let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: config, rank: params.r, targets: targets))
        return try charged(bytes, to: handle, kind: "adapter") {
            let adapter = LoRAAdapter.create(config: config, rank: params.r, alpha: params.alpha, dropout: dropout,
                                             targets: targets, seed: params.seed ?? 0, b: b)
            let object = LoadedAdapter(handle: handle, modelId: loaded.handle, adapter: adapter, path: nil, baseModelPath: loaded.source.path)
            try insert(object, as: .adapter, whileModelLives: loaded.handle)
            return object.summary
        }
    }

    func loadAdapter(_ params: AdapterLoadParams, context: RequestContext) throws -> AdapterSummary {
        let loaded = try model(params.modelId)
        let url = try PathParam.existingItem(params.path, field: "path")
        let handle = registry.newHandle(.adapter)
        return try ErrorMapping.translating {
            // The header says what the tensors will cost; charged before they are read.
            let layerCount = loaded.model.config.layerCount
            let rank: Int, targets: Set<LoRATarget>, read: () throws -> LoRAAdapter
            if GGUFFile.hasMagic(url) {
                let file = try GGUFFile(url: url)
                let header = try GGUFAdapterFile.header(file, layerCount: layerCount)
                (rank, targets, read) = (header.rank, header.targets, { try GGUFAdapterFile.load(file, model: loaded.model) })
            } else {
                let directory = try PathParam.existingDirectory(params.path, field: "path")
                let config = try PEFTAdapterConfig(directory: directory)
                (rank, targets, read) = (config.rank, try config.resolveTargets(layerCount: layerCount, checkpoint: context.checkCancelled),
                                         { try PEFTAdapterFile.load(directory: directory, model: loaded.model) })
            }
            let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: loaded.model.config, rank: rank, targets: targets))
            return try charged(bytes, to: handle, kind: "adapter") {
                try context.checkCancelled()
                let object = LoadedAdapter(handle: handle, modelId: loaded.handle, adapter: try read(), path: url,
                                           baseModelPath: loaded.source.path)
                try insert(object, as: .adapter, whileModelLives: loaded.handle)
                return object.summary
            }
        }
    }

    func saveAdapter(_ params: AdapterSaveParams, context: RequestContext) throws -> FilesResult {
        let object = try loadedAdapter(params.adapterId)
        let target = try PathParam.output(params.path, field: "path")
        switch params.format ?? "peft" {
        case "peft":
            return try ErrorMapping.translating {
                let names = try AtomicDirectory.write(to: target, rule: .adapterFolder) { folder in
                    try PEFTAdapterFile.save(object.adapter, to: folder, baseModelNameOrPath: object.baseModelPath).map(\.lastPathComponent)
                }
                return FilesResult(files: names.map { target.appendingPathComponent($0).path })
            }
        case "gguf":
            let config = try model(object.modelId, field: "adapterId").model.config
            var isDirectory: ObjCBool = false
            let file = FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory) && isDirectory.boolValue
                ? target.appendingPathComponent(GGUFAdapterFile.defaultFileName) : target
            return try ErrorMapping.translating {
                try GGUFAdapterFile.save(object.adapter, config: config, to: file, rule: .ggufFile)
                return FilesResult(files: [file.path])
            }
        case let other:
            throw RPCError.invalidParams(field: "format", "must be peft or gguf, got '\(other)'")
        }
    }

    func mergeAdapter(_ params: AdapterMergeParams, context: RequestContext) throws -> DerivedModelResult {
        let loaded = try model(params.modelId)
        let object = try loadedAdapter(params.adapterId)
        _ = try appliedAdapter(params.adapterId, on: loaded)
        let handle = registry.newHandle(.model)
        let bytes = loaded.model.mergedByteCount(with: object.adapter)
        return try ErrorMapping.translating {
            try charged(bytes, to: handle, kind: "weights") {
                try context.checkCancelled()
                let merged = try loaded.model.merged(with: object.adapter)
                let result = loaded.derived(handle: handle, model: merged, bytes: merged.byteCount)
                try insert(result, as: .model, whileModelLives: loaded.handle)
                return DerivedModelResult(modelId: handle, parameters: merged.parameterCount, bytes: result.bytes, config: result.configSummary)
            }
        }
    }

    func unloadAdapter(_ params: AdapterRef, context: RequestContext) throws -> JSONValue {
        _ = try loadedAdapter(params.adapterId)
        registry.remove(params.adapterId, kind: .adapter)
        ledger.release(params.adapterId)
        return .null
    }

}
