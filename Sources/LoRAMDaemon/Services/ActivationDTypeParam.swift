import MemoryPlanner
import RPC

/// `activationDtype` as `train/create` and `memory/plan`'s training workload give it: how a
/// training step keeps each layer's activations for its backward.
enum ActivationDTypeParam {
    /// `f32` when absent; anything but `f32` or `bf16` is InvalidParams naming `field`.
    static func parse(_ value: String?, field: String) throws -> Workload.ActivationDType {
        guard let value else { return .f32 }
        guard let dtype = Workload.ActivationDType(rawValue: value) else {
            throw RPCError.invalidParams(field: field, "must be f32 or bf16, got '\(value)'")
        }
        return dtype
    }
}
