import RPC
import Runtime

/// `matmulDtype` as `initialize` and `train/create` give it: how products of several rows
/// against the frozen weights are computed (`MatmulDType`).
enum MatmulDTypeParam {
    /// `fallback` when absent; anything but `f32` or `bf16` is InvalidParams naming `field`.
    static func parse(_ value: String?, field: String, fallback: MatmulDType) throws -> MatmulDType {
        guard let value else { return fallback }
        guard let dtype = MatmulDType(rawValue: value) else {
            throw RPCError.invalidParams(field: field, "must be f32 or bf16, got '\(value)'")
        }
        return dtype
    }

    /// Said when bf16 was asked for on a machine that runs it as f32.
    static func warning(_ asked: MatmulDType) -> String? {
        guard asked == .bf16, asked.effective != .bf16 else { return nil }
        return "matmulDtype bf16 needs Intel AMX (AMX-BF16), which this CPU or kernel does not offer (or LORAMD_NO_AMX is set); products run in f32."
    }
}
