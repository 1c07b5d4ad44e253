import Foundation
import MemoryPlanner
import RPC
import Runtime

/// Adapters: `adapter/create`, `adapter/load`, `adapter/save`, `adapter/merge`, `adapter/unload`.
/// An adapter belongs to the model it was created or loaded on; its fp32 bytes are charged before
/// they are allocated, and it is registered only while its model lives.
struct AdapterService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    func create(_ params: Daemon.AdapterCreateParams, context: RequestContext) throws -> AdapterSummary {
        let loaded = try registry.model(params.modelId)
        let (dropout, targets, b) = try params.checked()
        let config = loaded.model.config
        let handle = registry.newHandle(.adapter)
        let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: config, rank: params.r, targets: targets))
        return try ledger.charged(bytes, to: handle, kind: "adapter") {
            let adapter = LoRAAdapter.create(config: config, rank: params.r, alpha: params.alpha, dropout: dropout,
                                             targets: targets, seed: params.seed ?? 0, b: b)
            let object = LoadedAdapter(handle: handle, modelId: loaded.handle, adapter: adapter, path: nil, baseModelPath: loaded.source.path)
            try registry.insert(object, as: .adapter, whileModelLives: loaded.handle)
            return object.summary
        }
    }

    func load(_ params: Daemon.AdapterLoadParams, context: RequestContext) throws -> AdapterSummary {
        let loaded = try registry.model(params.modelId)
        let url = try PathParam.existingItem(params.path, field: "path")
        let handle = registry.newHandle(.adapter)
        return try ErrorMapping.translating {
            // The header says what the tensors will cost; charged before they are read.
            let layerCount = loaded.model.config.layerCount
            let rank: Int, targets: Set<LoRATarget>, read: () throws -> LoRAAdapter
            // A file is read as GGUF (one without its magic is a FormatError, as model/load says); a folder as PEFT's.
            var isDirectory: ObjCBool = false
            if !(FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue) {
                let file = try GGUFFile(url: url)
                let header = try GGUFAdapterFile.header(file, layerCount: layerCount, family: loaded.model.config.family)
                (rank, targets, read) = (header.rank, header.targets, { try GGUFAdapterFile.load(file, model: loaded.model) })
            } else {
                let directory = try PathParam.existingDirectory(params.path, field: "path")
                let config = try PEFTAdapterConfig(directory: directory)
                (rank, targets, read) = (config.rank, try config.resolveTargets(layerCount: layerCount, layout: loaded.model.config.family.layout,
                                                                                     checkpoint: context.checkCancelled),
                                         { try PEFTAdapterFile.load(directory: directory, model: loaded.model) })
            }
            let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: loaded.model.config, rank: rank, targets: targets))
            return try ledger.charged(bytes, to: handle, kind: "adapter") {
                try context.checkCancelled()
                let object = LoadedAdapter(handle: handle, modelId: loaded.handle, adapter: try read(), path: url,
                                           baseModelPath: loaded.source.path)
                try registry.insert(object, as: .adapter, whileModelLives: loaded.handle)
                return object.summary
            }
        }
    }

    func save(_ params: Daemon.AdapterSaveParams, context: RequestContext) throws -> FilesResult {
        let object = try registry.loadedAdapter(params.adapterId)
        switch params.format ?? "peft" {
        case "peft":
            let target = try PathParam.output(params.path, field: "path", rule: .adapterFolder)
            return try ErrorMapping.translating {
                let names = try AtomicDirectory.write(to: target, rule: .adapterFolder) { folder in
                    try PEFTAdapterFile.save(object.adapter, to: folder, baseModelNameOrPath: object.baseModelPath).map(\.lastPathComponent)
                }
                return FilesResult(files: names.map { target.appendingPathComponent($0).path })
            }
        case "gguf":
            let config = try registry.model(object.modelId, field: "adapterId").model.config
            // Into a folder (a real one, not a link to one): its adapter.gguf.
            try PathParam.check(params.path, field: "path")
            let given = PathParam.url(params.path)
            let file = try PathParam.output(FileType.of(given) == S_IFDIR ? given.appendingPathComponent(GGUFAdapterFile.defaultFileName).path : given.path,
                                            field: "path", rule: .ggufFile)
            return try ErrorMapping.translating {
                try GGUFAdapterFile.save(object.adapter, config: config, to: file, rule: .ggufFile)
                return FilesResult(files: [file.path])
            }
        case let other:
            throw RPCError.invalidParams(field: "format", "must be peft or gguf, got '\(other)'")
        }
    }

    func merge(_ params: Daemon.AdapterMergeParams, context: RequestContext) throws -> DerivedModelResult {
        let loaded = try registry.model(params.modelId)
        let object = try registry.loadedAdapter(params.adapterId)
        _ = try registry.appliedAdapter(params.adapterId, on: loaded)
        let handle = registry.newHandle(.model)
        let bytes = loaded.model.mergedByteCount(with: object.adapter)
        return try ErrorMapping.translating {
            try ledger.charged(bytes, to: handle, kind: "weights") {
                try context.checkCancelled()
                let merged = try loaded.model.merged(with: object.adapter)
                let result = loaded.derived(handle: handle, model: merged, bytes: merged.byteCount)
                try registry.insert(result, as: .model, whileModelLives: loaded.handle)
                return DerivedModelResult(modelId: handle, parameters: merged.parameterCount, bytes: result.bytes, config: result.configSummary)
            }
        }
    }

    func unload(_ params: Daemon.AdapterRef, context: RequestContext) throws -> JSONValue {
        _ = try registry.loadedAdapter(params.adapterId)
        registry.remove(params.adapterId, kind: .adapter)
        ledger.release(params.adapterId)
        return .null
    }
}
