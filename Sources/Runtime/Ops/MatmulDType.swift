import CKernels

/// How a product of several rows against a frozen weight is computed (`matmulDtype`): `f32`
/// through OpenBLAS's sgemm, or `bf16`: the rows and the weight rounded to bf16, products summed
/// in fp32, on Intel AMX (`lk_gemm_bf16`), about what PyTorch's bf16 autocast does. One-row
/// products (decode) read the weight as it lies either way; LoRA's own small products, attention
/// and the loss stay fp32. Without AMX on the CPU, `bf16` runs as `f32` (`effective` says which).
public enum MatmulDType: String, Codable, CaseIterable, Sendable {
    case f32, bf16

    /// Whether this CPU and OS can run `bf16` products (AMX-BF16 granted to the process).
    public static let amxAvailable = lk_amx_available() != 0

    /// What a request for `self` runs as on this machine.
    public var effective: MatmulDType { self == .bf16 && Self.amxAvailable ? .bf16 : .f32 }

    /// The daemon's default for sessions and jobs that do not say (`initialize`'s `matmulDtype`).
    /// Set once at start-up, like `Parallel.threads`.
    public static var processDefault = MatmulDType.f32
}
