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

        router.register("model/load") { [unowned self] (params: LoadParams, context) in try models.load(params, context: context) }

        router.register("model/unload") { [unowned self] (params: ModelRef, context) in try models.unload(params, context: context) }

        router.register("model/save") { [unowned self] (params: SaveParams, context) in try models.save(params, context: context) }
    }
}
