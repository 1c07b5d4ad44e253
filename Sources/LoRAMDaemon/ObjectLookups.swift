import Foundation
import RPC
import Runtime

/// The live objects a request names, by kind, each refusal naming the request's field.
extension ObjectRegistry {
    func model(_ id: String, field: String = "modelId") throws -> LoadedModel {
        do {
            return try lookup(id, kind: .model) as! LoadedModel
        } catch let error as RPCError {
            throw error.with("field", .string(field))
        }
    }

    func job(_ id: String) throws -> TrainingJobObject {
        do {
            return try lookup(id, kind: .job) as! TrainingJobObject
        } catch let error as RPCError {
            throw error.with("field", .string("jobId"))
        }
    }

    func loadedAdapter(_ id: String, field: String = "adapterId") throws -> LoadedAdapter {
        do {
            return try lookup(id, kind: .adapter) as! LoadedAdapter
        } catch let error as RPCError {
            throw error.with("field", .string(field))
        }
    }

    /// The adapter `adapterId` names, checked to belong to `loaded`; nil when none is given.
    func appliedAdapter(_ adapterId: String?, on loaded: LoadedModel) throws -> LoRAAdapter? {
        guard let adapterId else { return nil }
        let adapter = try loadedAdapter(adapterId)
        guard adapter.modelId == loaded.handle else {
            throw RPCError.invalidParams(field: "adapterId", "belongs to \(adapter.modelId), not \(loaded.handle)",
                                         hint: "Apply \(adapterId) with modelId \(adapter.modelId), or save it and 'adapter/load' it onto \(loaded.handle).")
        }
        return adapter.adapter
    }

    /// The adapter `id` names, to be trained on model `modelId`.
    func trainableAdapter(_ id: String, modelId: String) throws -> LoRAAdapter {
        let object: LiveObject
        do {
            object = try lookup(id, kind: .adapter)
        } catch let error as RPCError {
            throw error.with("field", .string("adapterId"))
        }
        guard let adapter = object as? TrainableAdapterObject else { throw RPCError.internalError("adapter \(id) has no trainable weights") }
        guard adapter.modelId == modelId else {
            throw RPCError.invalidParams(field: "adapterId", "belongs to model \(adapter.modelId), not \(modelId)")
        }
        return adapter.adapter
    }
}
