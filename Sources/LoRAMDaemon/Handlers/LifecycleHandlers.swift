import Foundation
import RPC
import Runtime

/// `initialize`: the budget, the compute threads, and what this daemon can do. (`shutdown`,
/// `exit` and `$/cancelRequest` belong to the RPC layer itself.)
extension Daemon {
    struct InitializeParams: Decodable {
        var processId: Int64?
        var clientInfo: ClientInfo?
        var hbmCapBytes: Int64?
        var threads: Int?
        /// loramd's: `f32` (default) or `bf16`, how products against frozen weights are computed.
        var matmulDtype: String?
        struct ClientInfo: Decodable { var name: String; var version: String? }
    }

    struct InitializeResult: Encodable {
        var serverInfo: ServerInfo
        var capabilities: Capabilities
        var device: Device
        /// What was asked for and does not hold on this machine (a cap above its memory, bf16
        /// products without AMX), each also logged as a warning; absent when there is none.
        var warnings: [String]?
        struct ServerInfo: Encodable { var name: String; var version: String; var contractVersion: Int }
        struct Capabilities: Encodable { var methods: [String]; var dtypes: [String]; var pruning: [String] }
        struct Device: Encodable {
            var kind: String
            var threads: Int
            var memoryBytes: Int64
            var hbmCapBytes: Int64
            /// Set when hbmCapBytes is the default share of physical memory.
            var hbmCapFraction: Double?
            var blas: String
            /// What products against frozen weights run as (`initialize`'s `matmulDtype` on this machine).
            var matmulDtype: String
            /// Whether this machine runs `matmulDtype` bf16 (Intel AMX-BF16).
            var amx: Bool
        }
    }

    func registerLifecycle() {
        router.register("initialize") { [unowned self] (params: InitializeParams, context) -> InitializeResult in
            let memory = Int64(ProcessInfo.processInfo.physicalMemory)
            if let cap = params.hbmCapBytes, cap <= 0 {
                throw RPCError.invalidParams(field: "hbmCapBytes", "must be a positive number of bytes, got \(cap)")
            }
            if let threads = params.threads, !(1...1024).contains(threads) {
                throw RPCError.invalidParams(field: "threads", "must be between 1 and 1024, got \(threads)")
            }
            let matmul = try MatmulDTypeParam.parse(params.matmulDtype, field: "matmulDtype", fallback: .f32)
            var warnings: [String] = []
            if let message = MatmulDTypeParam.warning(matmul) { warnings.append(message) }
            if let cap = params.hbmCapBytes, cap > memory {
                // Taken as given (a plan for a bigger machine is the point of a dry run), but said.
                warnings.append(String(format: "hbmCapBytes %.1f GiB is more than this machine's %.1f GiB of memory: plans under it may not fit here",
                                       Double(cap) / Double(1 << 30), Double(memory) / Double(1 << 30)))
            }
            warnings.forEach { context.log(.warning, $0) }
            if let cap = params.hbmCapBytes { ledger.setCap(cap) }
            MatmulDType.processDefault = matmul
            let threads = params.threads ?? ProcessInfo.processInfo.activeProcessorCount
            BLAS.setThreads(threads)
            return InitializeResult(
                serverInfo: .init(name: "loramd", version: LoRAMDVersion.current, contractVersion: LoRAMDVersion.contract),
                // Lists grow as the runtime learns formats and pruning methods; they say what works now.
                capabilities: .init(methods: router.methods, dtypes: Self.weightDTypes.keys.sorted(), pruning: PruningMethod.allCases.map(\.rawValue)),
                device: .init(kind: "cpu", threads: threads, memoryBytes: memory, hbmCapBytes: ledger.capBytes,
                              hbmCapFraction: params.hbmCapBytes == nil ? Self.defaultCapFraction : nil,
                              blas: BLAS.configuration, matmulDtype: matmul.effective.rawValue, amx: MatmulDType.amxAvailable),
                warnings: warnings.isEmpty ? nil : warnings)
        }
    }
}
