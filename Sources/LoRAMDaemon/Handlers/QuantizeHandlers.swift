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
}
