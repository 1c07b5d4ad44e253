import Foundation
import MemoryPlanner
import RPC
import Runtime

/// A LoRA adapter the client created or loaded, bound to the model it was made for: requests
/// apply it to that model only, and that model cannot be unloaded while the adapter lives.
final class LoadedAdapter: LiveObject, @unchecked Sendable {
    let handle: String
    let modelId: String
    let adapter: LoRAAdapter
    /// The directory it was loaded from; nil for a new one.
    let path: URL?
    /// Where the base model came from: `base_model_name_or_path` when saved.
    let baseModelPath: String
    let bytes: Int

    init(handle: String, modelId: String, adapter: LoRAAdapter, path: URL?, baseModelPath: String) {
        self.handle = handle
        self.modelId = modelId
        self.adapter = adapter
        self.path = path
        self.baseModelPath = baseModelPath
        bytes = Self.bytes(parameters: adapter.parameterCount)
    }

    /// Adapters are held in fp32.
    static func bytes(parameters: Int) -> Int { parameters * 4 }

    /// What `adapter/create` and `adapter/load` answer.
    var summary: AdapterSummary {
        AdapterSummary(adapterId: handle, modelId: modelId, r: adapter.rank, alpha: adapter.alpha, dropout: adapter.dropout,
                       targets: LoRATarget.allCases.filter(adapter.targets.contains).map(\.rawValue), parameters: adapter.parameterCount, bytes: bytes)
    }

    var listing: JSONValue {
        guard case .object(var members) = summary.json else { return summary.json }
        members.append(("path", path.map { .string($0.path) } ?? .null))
        return .object(members)
    }
}

/// An adapter as `adapter/create`, `adapter/load` and `adapter/recover` answer it.
struct AdapterSummary: WireResult {
    var adapterId: String
    var modelId: String
    var r: Int
    var alpha: Double
    var dropout: Double
    var targets: [String]
    var parameters: Int
    var bytes: Int
}
