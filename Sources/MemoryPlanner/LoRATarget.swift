/// A linear a LoRA adapter can attach to; raw values are the PEFT module names.
public enum LoRATarget: String, CaseIterable, Codable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"
    case lmHead = "lm_head"

    /// The seven decoder linears, the paper's default targets.
    public static let decoder: Set<LoRATarget> = [.q, .k, .v, .o, .gate, .up, .down]
    /// The per-layer targets, in the order a decoder layer uses them.
    public static let layerTargets: [LoRATarget] = [.q, .k, .v, .o, .gate, .up, .down]

    /// The module's path within a transformers decoder layer (`self_attn.q_proj`, `mlp.down_proj`),
    /// the same in every family loramd runs; lm_head's is its own name.
    public static func modulePath(_ target: LoRATarget) -> String {
        switch target {
        case .q, .k, .v, .o: return "self_attn." + target.rawValue
        case .gate, .up, .down: return "mlp." + target.rawValue
        case .lmHead: return target.rawValue
        }
    }
}
