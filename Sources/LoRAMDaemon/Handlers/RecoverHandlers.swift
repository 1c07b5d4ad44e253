import Foundation
import MemoryPlanner
import RPC
import Runtime

/// `adapter/recover`: LoRAM's last step. It makes a new adapter on the original from one trained
/// on the carrier (zeros, or small noise, on the pruned rows and columns), charged to the budget
/// before it is built.
extension Daemon {
    struct RecoverParams: Decodable {
        var adapterId: String
        var targetModelId: String
        var fill: String?
        var seed: UInt64?
    }

    /// The first difference between two shapes, in words.
    static func shapeDifference(_ found: ModelShape, _ expected: ModelShape) -> String {
        if found.hidden != expected.hidden { return "hidden \(found.hidden), expected \(expected.hidden)" }
        if found.headDim != expected.headDim { return "head_dim \(found.headDim), expected \(expected.headDim)" }
        if found.vocab != expected.vocab { return "vocab \(found.vocab), expected \(expected.vocab)" }
        if found.layers.count != expected.layers.count { return "\(found.layers.count) layers, expected \(expected.layers.count)" }
        if let l = found.layers.indices.first(where: { found.layers[$0] != expected.layers[$0] }) {
            let f = found.layers[l], e = expected.layers[l]
            return "layer \(l) has \(f.heads) heads, \(f.kvHeads) kv heads, \(f.intermediate) neurons; expected \(e.heads), \(e.kvHeads), \(e.intermediate)"
        }
        return "tied embeddings \(found.tiedEmbeddings), expected \(expected.tiedEmbeddings)"
    }
}
