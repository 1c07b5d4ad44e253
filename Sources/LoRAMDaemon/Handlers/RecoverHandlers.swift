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

    func registerRecovery() {
        router.register("adapter/recover") { [unowned self] (params: RecoverParams, _) -> JSONValue in
            let object = try loadedAdapter(params.adapterId)
            let carrier = try model(object.modelId, field: "adapterId")
            guard let manifest = carrier.model.pruning else {
                throw RPCError.invalidParams(field: "adapterId", "belongs to \(carrier.handle), which is not a pruned model; recover adapters trained on a 'model/prune' result")
            }
            let target = try model(params.targetModelId, field: "targetModelId")
            let fill: LoRARecovery.Fill
            switch params.fill ?? "zero" {
            case "zero":
                if params.seed != nil { throw RPCError.invalidParams(field: "seed", "applies to fill normal only") }
                fill = .zero
            case "normal": fill = .normal(seed: params.seed ?? 0)
            case let other: throw RPCError.invalidParams(field: "fill", "must be zero or normal, got '\(other)'")
            }
            let expected = manifest.originalConfig(of: carrier.model.config).modelShape
            guard target.model.config.modelShape == expected else {
                throw RPCError.invalidParams(field: "targetModelId", "\(target.handle) does not have the shapes \(carrier.handle) was pruned from: \(Self.shapeDifference(target.model.config.modelShape, expected))",
                                             hint: "Recover onto the original model the carrier was pruned from (load it with 'model/load').")
            }
            let adapter = object.adapter
            let handle = registry.newHandle(.adapter)
            let bytes = LoadedAdapter.bytes(parameters: LoRAAdapter.parameterCount(config: target.model.config, rank: adapter.rank, targets: adapter.targets))
            return try charged(bytes, to: handle, kind: "adapter") {
                let recovered: LoRAAdapter
                do {
                    // A training job may be updating the adapter; read one consistent state.
                    recovered = try adapter.access.reading {
                        try LoRARecovery.recover(adapter: adapter, manifest: manifest, target: target.model.config, fill: fill)
                    }
                } catch let failure as LoRARecovery.Failure {
                    switch failure {
                    case .targetMismatch: throw RPCError.invalidParams(field: "targetModelId", failure.description)
                    case .adapterMismatch: throw RPCError.invalidParams(field: "adapterId", failure.description)
                    }
                }
                let result = LoadedAdapter(handle: handle, modelId: target.handle, adapter: recovered, path: nil, baseModelPath: target.source.path)
                try insert(result, as: .adapter, whileModelLives: target.handle)
                guard case .object(var members) = result.summary else { return result.summary }
                members.append(("recoveredFrom", .string(object.handle)))
                members.append(("fill", .string(params.fill ?? "zero")))
                return .object(members)
            }
        }
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
