import Foundation
import RPC
import Runtime

/// `model/load`, `model/unload`, `model/save`, `model/list`.
extension Daemon {
    struct LoadParams: Decodable {
        var path: String
        var dtype: String?
    }

    struct LoadResult: Encodable {
        var modelId: String
        var config: JSONValue
        var parameters: Int
        var bytes: Int
        /// "huggingFace" (a folder) or "gguf" (one file).
        var format: String
        /// The checkpoint's chat template (Jinja), when it ships one.
        var chatTemplate: String?
    }

    struct ModelRef: Decodable { var modelId: String }

    struct SaveParams: Decodable {
        var modelId: String
        var path: String
        var dtype: String?
        /// "huggingFace" (default: a folder) or "gguf" (one file, as llama.cpp's converter writes it).
        var format: String?
        /// The GGUF tensor type of the linears and embeddings: F32, F16 (default), BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1.
        var ggufType: String?
    }

    struct ModelListResult: Encodable {
        var models: [JSONValue]
        var adapters: [JSONValue]
        var jobs: [JSONValue]
        var memory: JSONValue
    }

    static let weightDTypes: [String: TensorDType] = ["f32": .f32, "bf16": .bf16, "f16": .f16]

    static func weightDType(_ name: String?, field: String = "dtype") throws -> TensorDType? {
        guard let name else { return nil }
        guard let dtype = weightDTypes[name.lowercased()] else {
            throw RPCError.invalidParams(field: field, "must be one of f32, bf16, f16, got '\(name)'")
        }
        return dtype
    }

    func model(_ id: String, field: String = "modelId") throws -> LoadedModel { try registry.model(id, field: field) }

    func registerModels() {
        router.register("model/list", lane: .quick) { [unowned self] (_: NoParams, _) -> ModelListResult in
            ModelListResult(models: registry.listings(.model), adapters: registry.listings(.adapter),
                            jobs: registry.listings(.job), memory: ledger.summary)
        }

        router.register("model/load") { [unowned self] (params: LoadParams, context) in try loadModel(params, context: context) }

        router.register("model/unload") { [unowned self] (params: ModelRef, context) in try unloadModel(params, context: context) }

        router.register("model/save") { [unowned self] (params: SaveParams, context) in try saveModel(params, context: context) }
    }

    /// `model/save {format: "gguf"}`: the tokenizer goes into the metadata (a GGUF's own
    /// `tokenizer.*` keys as they were; a folder's byte-level BPE translated), or is left out with
    /// a warning when it has no GGUF form.
    func saveGGUF(_ loaded: LoadedModel, _ params: SaveParams) throws -> FilesResult {
        if params.dtype != nil { throw RPCError.invalidParams(field: "dtype", "does not apply to GGUF; use ggufType") }
        let typeName = params.ggufType ?? "F16"
        guard let type = GGUFTensorType(name: typeName.uppercased()), type.isEncodable else {
            throw RPCError.invalidParams(field: "ggufType", "must be one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, got '\(typeName)'")
        }
        let file = try PathParam.output(params.path, field: "path")
        return try ErrorMapping.translating {
            var warnings: [String] = []
            var tokenizer = loaded.ggufTokenizerMetadata ?? []
            if loaded.ggufTokenizerMetadata == nil, let t = loaded.tokenizer {
                do { tokenizer = try t.ggufMetadata() } catch let error as Tokenizer.GGUFExportError {
                    warnings.append("tokenizer left out: \(error.description)")
                }
            }
            if let template = loaded.chatTemplate, !tokenizer.contains(where: { $0.key == "tokenizer.chat_template" }) {
                tokenizer.append(("tokenizer.chat_template", .string(template)))
            }
            try loaded.model.saveGGUF(to: file, type: type, tokenizer: tokenizer, name: loaded.source.deletingPathExtension().lastPathComponent,
                                      rule: .ggufFile)
            return FilesResult(files: [file.path], warnings: warnings)
        }
    }

    /// EOS ids from generation_config.json (an int or a list), if the file is there and readable.
    static func generationConfigEOS(_ directory: URL) -> [Int] {
        guard let data = try? RegularFile.contents(directory.appendingPathComponent("generation_config.json")),
              let value = try? JSONParser.parse(Array(data)), let eos = value["eos_token_id"] else { return [] }
        switch eos {
        case .int(let id): return [Int(id)]
        case .array(let ids): return ids.compactMap { $0.intValue.map(Int.init) }
        default: return []
        }
    }

    func loadModel(_ params: LoadParams, context: RequestContext) throws -> LoadResult {
        let dtype = try Self.weightDType(params.dtype)
        let url = try PathParam.existingItem(params.path, field: "path")
        let handle = registry.newHandle(.model)
        return try ErrorMapping.translating {
            let checkpoint = try ModelCheckpoint.open(url)
            let bytes = checkpoint.plannedBytes(dtype: dtype)
            // Charged first: over the budget, nothing is read; a 16-bit storage that would fit is suggested.
            do {
                try ledger.charge(Int64(bytes), to: handle, breakdown: .object([("weights", .int(Int64(bytes)))]))
            } catch let error as RPCError where error.code == .overBudget {
                let free = ledger.capBytes - ledger.usedBytes
                let smaller = [("bf16", TensorDType.bf16)].map { ($0.0, checkpoint.plannedBytes(dtype: $0.1)) }
                    .first { Int64($0.1) <= free && $0.1 < bytes }
                throw error.with("suggestion", smaller.map { .object([("changes", .object([("dtype", .string($0.0))])), ("peakBytes", .int(Int64($0.1)))]) } ?? .null)
            }
            do {
                try context.checkCancelled()
                let tokenizer = try checkpoint.tokenizer()
                let model = try checkpoint.loadModel(dtype: dtype)
                try context.checkCancelled()
                var eos = Set(model.config.eosTokenIds)
                if case .huggingFace(let directory, _, _) = checkpoint { eos.formUnion(Self.generationConfigEOS(directory)) }
                if case .gguf(let file, _) = checkpoint, let eot = file.metadata["tokenizer.ggml.eot_token_id"]?.intValue { eos.insert(eot) }
                if let id = tokenizer?.eosTokenId { eos.insert(id) }
                let loaded = LoadedModel(handle: handle, model: model, tokenizer: tokenizer, source: checkpoint.url,
                                         format: checkpoint.isGGUF ? .gguf : .huggingFace, chatTemplate: checkpoint.chatTemplate,
                                         eosTokenIds: eos, bytes: model.byteCount, ggufTokenizerMetadata: checkpoint.ggufTokenizerMetadata)
                registry.insert(loaded, as: .model)
                return LoadResult(modelId: handle, config: loaded.configSummary, parameters: model.parameterCount, bytes: loaded.bytes,
                                  format: loaded.format.rawValue, chatTemplate: loaded.chatTemplate)
            } catch {
                ledger.release(handle)
                throw error
            }
        }
    }

    func unloadModel(_ params: ModelRef, context: RequestContext) throws -> JSONValue {
        _ = try model(params.modelId)
        try removeModelUnlessAdapted(params.modelId) {
            registry.remove(params.modelId, kind: .model)
            ledger.release(params.modelId)
        }
        return .null
    }

    func saveModel(_ params: SaveParams, context: RequestContext) throws -> FilesResult {
        let loaded = try model(params.modelId)
        switch params.format ?? "huggingFace" {
        case "huggingFace": break
        case "gguf": return try saveGGUF(loaded, params)
        case let other: throw RPCError.invalidParams(field: "format", "must be huggingFace or gguf, got '\(other)'")
        }
        let dtype = try Self.weightDType(params.dtype)
        let directory = try PathParam.output(params.path, field: "path")
        return try ErrorMapping.translating {
            // The folder appears whole or not at all, replacing an earlier model there (the
            // loaded one's own folder included: its files are read before the swap).
            let files = try AtomicDirectory.write(to: directory, rule: .modelFolder) { folder -> [String] in
                try loaded.model.save(to: folder, dtype: dtype)
                var files = [LlamaConfig.fileName, CheckpointDirectory.singleFileName]
                if loaded.model.pruning != nil { files.append(PruningManifest.fileName) }
                // The tokenizer and generation settings travel with the weights.
                for (name, data) in try loaded.companionFiles() {
                    try AtomicFile.write(data, to: folder.appendingPathComponent(name))
                    files.append(name)
                }
                return files
            }
            return FilesResult(files: files.sorted().map { directory.appendingPathComponent($0).path })
        }
    }

}
