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
            if let message = MatmulDTypeParam.warning(matmul) { context.log(.warning, message) }
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
                              blas: BLAS.configuration, matmulDtype: matmul.effective.rawValue, amx: MatmulDType.amxAvailable))
        }
    }
}
