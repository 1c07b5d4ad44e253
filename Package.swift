// swift-tools-version:5.10
// loramd: LoRAM ("Train Small, Infer Large") as a JSON-RPC daemon.
// Imports point one way: LoRAMDaemon -> RPC, Runtime -> MemoryPlanner -> CJemalloc; Runtime -> COpenBLAS.
import PackageDescription

let package = Package(
    name: "loramd",
    products: [
        .executable(name: "loramd", targets: ["LoRAMDaemon"]),
    ],
    targets: [
        // System libraries from Debian: libopenblas-dev (cblas.h) and libjemalloc-dev.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CJemalloc",
            pkgConfig: "jemalloc",
            providers: [.apt(["libjemalloc-dev"])]
        ),

        // Framing, JSON-RPC, lifecycle, cancellation, progress. Knows nothing of models.
        .target(name: "RPC"),
        // Lifetimes, offsets, the jemalloc-backed arena, cap search. Knows shapes, never weights.
        .target(name: "MemoryPlanner", dependencies: ["CJemalloc"]),
        // Elementwise kernels in C: AVX2/FMA where the CPU has it (chosen at run time).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // Tensors, kernels, model, tokenizer, LoRA, training, pruning, quantization, generation.
        .target(name: "Runtime", dependencies: ["MemoryPlanner", "COpenBLAS", "CKernels"]),
        // The `loramd` executable: method handlers translating between RPC and the rest.
        .executableTarget(name: "LoRAMDaemon", dependencies: ["RPC", "Runtime", "MemoryPlanner"]),

        .testTarget(name: "RPCTests", dependencies: ["RPC"]),
        .testTarget(name: "PlannerTests", dependencies: ["MemoryPlanner", "CJemalloc"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "MemoryPlanner", "COpenBLAS"]),
        // Drives the real `loramd` process over pipes.
        .testTarget(name: "DaemonTests", dependencies: ["LoRAMDaemon", "RPC", "Runtime", "MemoryPlanner"]),
    ]
)
