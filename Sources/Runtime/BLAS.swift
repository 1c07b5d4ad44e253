import COpenBLAS
import MemoryPlanner

/// The matmuls the runtime needs, through OpenBLAS. Row-major throughout, as HF stores weights.
public enum BLAS {
    /// C[M,N] = alpha · A[M,K] · B[N,K]ᵀ + beta · C: the linear layer y = x·Wᵀ with W stored [out, in].
    public static func matmulTransposedB(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(k), b, Int32(k), beta, c, Int32(n))
    }

    /// C[M,N] = alpha · A[M,K] · B[K,N] + beta · C.
    public static func matmul(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
        m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(k), b, Int32(n), beta, c, Int32(n))
    }

    /// Sets the number of threads OpenBLAS uses for every later call (`threads` of `initialize`).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
        Parallel.threads = max(1, count)
    }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Runs `body` with each OpenBLAS call on the calling thread alone, for regions that split
    /// many small products across the compute threads themselves: OpenBLAS would otherwise split
    /// each (S, S)-sized product over its own threads and spend more on the handoff than on the work.
    public static func oneThreadPerCall<R>(_ body: () -> R) -> R {
        let count = openblas_get_num_threads()
        guard count > 1 else { return body() }
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(count) }
        return body()
    }

    /// OpenBLAS's build description ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64").
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// What a threaded level-3 call (sgemm on more than one thread) mallocs for itself and frees
    /// before returning: OpenBLAS's job table (level3_thread.c, `USE_ALLOC_HEAP`), MAX_THREADS² ×
    /// 128 bytes (512 KiB for Debian's MAX_THREADS=64), seen under gdb on every threaded sgemm of a
    /// training step; the step makes one such call at a time. 0 on one thread.
    public static var threadedCallHeapBytes: Int {
        guard threads > 1 else { return 0 }
        let maxThreads = configuration.split(separator: " ").first { $0.hasPrefix("MAX_THREADS=") }
            .flatMap { Int($0.dropFirst("MAX_THREADS=".count)) } ?? 64
        return Jemalloc.reservedBytes(maxThreads * maxThreads * 128)
    }
}
