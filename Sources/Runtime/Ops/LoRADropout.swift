import MemoryPlanner

/// PEFT's dropout on a LoRA pair's input during training: each element kept with probability
/// 1 − rate and scaled by 1/(1 − rate). The mask is a hash of (step seed, layer, target, index),
/// so the backward regenerates it instead of storing it.
struct LoRADropout {
    let keep: Double
    let base: UInt64

    /// nil when dropout is off (rate 0, or no seed: evaluation).
    init?(rate: Double, seed: UInt64?, layer: Int, target: LoRATarget) {
        guard let seed, rate > 0 else { return nil }
        keep = 1 - rate
        base = seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(layer &* 16 &+ (LoRATarget.allCases.firstIndex(of: target) ?? 0)) &* 0xBF58_476D_1CE4_E5B9
    }

    /// dropout(x) into `out` (count floats).
    func forward(_ x: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<Float>) {
        let scale = Float(1 / keep)
        for i in 0..<count { out[i] = kept(i) ? x[i] * scale : 0 }
    }

    /// dx += dropout'(dy): the kept elements of `dy`, scaled.
    func backward(_ dy: UnsafePointer<Float>, count: Int, dx: UnsafeMutablePointer<Float>) {
        let scale = Float(1 / keep)
        for i in 0..<count where kept(i) { dx[i] += dy[i] * scale }
    }

    @inline(__always)
    func kept(_ index: Int) -> Bool {
        var z = base &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Double(z >> 11) * 0x1.0p-53 < keep
    }
}
