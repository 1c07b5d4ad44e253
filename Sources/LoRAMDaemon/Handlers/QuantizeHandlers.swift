import Foundation
import RPC
import Runtime

/// `model/quantize`: a new model whose decoder linears are NF4 (QLoRAM's carrier); the original
/// stays loaded. The bytes are charged before anything is built.
extension Daemon {
    struct QuantizeParams: Decodable {
        var modelId: String
        var format: String
        var blockSize: Int?
        var doubleQuant: Bool?
    }

    struct QuantizeResult: Encodable {
        var modelId: String
        var bytes: Int
        var parameters: Int
        var bytesPerParameter: Double
    }

    func registerQuantization() {
        router.register("model/quantize") { [unowned self] (params: QuantizeParams, context) -> QuantizeResult in
            let loaded = try model(params.modelId)
            guard params.format.lowercased() == "nf4" else {
                throw RPCError.invalidParams(field: "format", "must be 'nf4', got '\(params.format)'")
            }
            let blockSize = params.blockSize ?? 64, doubleQuant = params.doubleQuant ?? true
            guard NF4Tensor.supportedBlockSizes.contains(blockSize) else {
                throw RPCError.invalidParams(field: "blockSize", "must be a power of two from 32 to 4096, got \(blockSize)")
            }
            guard !loaded.model.isQuantized else {
                throw RPCError.invalidParams(field: "modelId", "model \(params.modelId) is already NF4")
            }
            let bytes = loaded.model.quantizedByteCount(blockSize: blockSize, doubleQuant: doubleQuant)
            let handle = registry.newHandle(.model)
            try ledger.charge(Int64(bytes), to: handle, breakdown: .object([("weights", .int(Int64(bytes)))]))
            do {
                try context.checkCancelled()
                let quantized: LlamaModel
                do {
                    // Cancellable between tensors; a cancelled quantize registers nothing and releases its charge.
                    quantized = try loaded.model.quantized(blockSize: blockSize, doubleQuant: doubleQuant, checkpoint: context.checkCancelled)
                } catch let error as QuantizationError {
                    throw RPCError.invalidParams(field: error.field == "weights" ? "modelId" : error.field, error.problem)
                }
                let result = loaded.derived(handle: handle, model: quantized, bytes: quantized.byteCount)
                registry.insert(result, as: .model)
                return QuantizeResult(modelId: handle, bytes: result.bytes, parameters: quantized.parameterCount,
                                      bytesPerParameter: Double(result.bytes) / Double(quantized.parameterCount))
            } catch {
                ledger.release(handle)
                throw error
            }
        }
    }
}
