import Foundation
import RPC
import Runtime

/// Models: `model/load` (charged before a tensor is read; over the budget, a 16-bit storage that
/// fits is suggested), `model/unload` (refused while adapters use the model) and `model/save`
/// (a Hugging Face folder or one GGUF file, appearing whole or not at all).
struct ModelService {
    let registry: ObjectRegistry
    let ledger: MemoryLedger

    func load(_ params: Daemon.LoadParams, context: RequestContext) throws -> Daemon.LoadResult {
        let dtype = try Daemon.weightDType(params.dtype)
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
                if case .huggingFace(let directory, _, _) = checkpoint { eos.formUnion(ModelService.generationConfigEOS(directory)) }
                if case .gguf(let file, _) = checkpoint, let eot = file.metadata["tokenizer.ggml.eot_token_id"]?.intValue { eos.insert(eot) }
                if let id = tokenizer?.eosTokenId { eos.insert(id) }
                let loaded = LoadedModel(handle: handle, model: model, tokenizer: tokenizer, source: checkpoint.url,
                                         format: checkpoint.isGGUF ? .gguf : .huggingFace, chatTemplate: checkpoint.chatTemplate,
                                         eosTokenIds: eos, bytes: model.byteCount, ggufTokenizerMetadata: checkpoint.ggufTokenizerMetadata)
                registry.insert(loaded, as: .model)
                return Daemon.LoadResult(modelId: handle, config: loaded.configSummary, parameters: model.parameterCount, bytes: loaded.bytes,
                                  format: loaded.format.rawValue, chatTemplate: loaded.chatTemplate)
            } catch {
                ledger.release(handle)
                throw error
            }
        }
    }

    func unload(_ params: Daemon.ModelRef, context: RequestContext) throws -> JSONValue {
        _ = try registry.model(params.modelId)
        try registry.removeModelUnlessAdapted(params.modelId) {
            registry.remove(params.modelId, kind: .model)
            ledger.release(params.modelId)
        }
        return .null
    }

    func save(_ params: Daemon.SaveParams, context: RequestContext) throws -> FilesResult {
        let loaded = try registry.model(params.modelId)
        switch params.format ?? "huggingFace" {
        case "huggingFace": break
        case "gguf": return try saveGGUF(loaded, params)
        case let other: throw RPCError.invalidParams(field: "format", "must be huggingFace or gguf, got '\(other)'")
        }
        let dtype = try Daemon.weightDType(params.dtype)
        let directory = try PathParam.output(params.path, field: "path", rule: .modelFolder)
        return try ErrorMapping.translating {
            // The folder appears whole or not at all, replacing an earlier model there (the
            // loaded one's own folder included: its files are read before the swap).
            let files = try AtomicDirectory.write(to: directory, rule: .modelFolder) { folder -> [String] in
                try loaded.model.save(to: folder, dtype: dtype)
                var files = [ModelConfig.fileName, CheckpointDirectory.singleFileName]
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

    /// `model/save {format: "gguf"}`: the tokenizer goes into the metadata (a GGUF's own
    /// `tokenizer.*` keys as they were; a folder's byte-level BPE translated), or is left out with
    /// a warning when it has no GGUF form.
    func saveGGUF(_ loaded: LoadedModel, _ params: Daemon.SaveParams) throws -> FilesResult {
        if params.dtype != nil { throw RPCError.invalidParams(field: "dtype", "does not apply to GGUF; use ggufType") }
        let typeName = params.ggufType ?? "F16"
        guard let type = GGUFTensorType(name: typeName.uppercased()), type.isEncodable else {
            throw RPCError.invalidParams(field: "ggufType", "must be one of F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, got '\(typeName)'")
        }
        let file = try PathParam.output(params.path, field: "path", rule: .ggufFile)
        return try ErrorMapping.translating {
            var warnings: [String] = []
            var tokenizer = loaded.ggufTokenizerMetadata ?? []
            if loaded.ggufTokenizerMetadata == nil, let t = loaded.tokenizer {
                do { tokenizer = try t.ggufMetadata() } catch let error as Tokenizer.GGUFExportError {
                    warnings.append("tokenizer left out: \(error.description)")
                }
            } else if loaded.tokenizer == nil {
                warnings.append("the model has no tokenizer, so the file has no tokenizer.ggml.* metadata: llama.cpp will not load it (loramd will, with token ids)")
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
}
