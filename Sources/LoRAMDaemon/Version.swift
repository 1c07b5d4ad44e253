/// The daemon's version, reported by `--version` and `initialize`.
enum LoRAMDVersion {
    static let current = "0.11.0"
    /// The RPC contract version implemented (docs/rpc.md).
    static let contract = 0
}
